"""Evaluation (lecture math): smoothing (A9, A10), the judge's scores (A14, A15), the lectures' summaries (B14), authorship tables, plots and report pages."""
