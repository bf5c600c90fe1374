"""Evaluation: held-out benchmarks and prompting strategies."""
