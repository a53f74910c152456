"""Evaluation: smoothing (A9, A10), the judge's scores (A14, A15), the lecture's results, plots, report pages, and the programs that print them."""
