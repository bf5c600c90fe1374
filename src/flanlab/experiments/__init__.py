"""Experiments: the pipeline and the paper's scaling studies."""
