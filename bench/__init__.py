"""Benchmarks: our models against transformers on the same work (`make bench`)."""
