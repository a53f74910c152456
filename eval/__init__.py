"""Evaluation helpers: loss-curve smoothing, judge scoring."""
