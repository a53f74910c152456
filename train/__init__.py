"""Training: corpus loading and clean-up, judge and generator training."""
