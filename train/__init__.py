"""Training (lecture math): losses and metrics, optimizers, the LM step (B2), the BERT judge's step, one judgement (B3-B13), RL from the judge (T1-T8)."""
