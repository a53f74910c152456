"""Benchmarks (plumbing): the workloads and timing that `python -m scripts.bench` (`make bench`) runs, ours against transformers."""
