"""The four algorithms; each file reads like its box in ALGORITHMS.md."""
