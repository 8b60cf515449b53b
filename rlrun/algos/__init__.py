"""The four algorithms; each file reads like its box in the chapter (Alg 5.22-5.24, sec. 5.9)."""
