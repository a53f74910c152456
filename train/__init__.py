"""Training: the lecture math of a step (A3, A7, B2, T1-T8, the judgement B3-B16) and the programs that loop it."""
