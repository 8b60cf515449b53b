"""The algorithms: the chapter's four, each file reading like its box (Alg 5.22-5.24, sec. 5.9), and
A2C, the ACKTR paper's baseline."""
