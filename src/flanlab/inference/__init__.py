"""Inference backends behind one narrow LM protocol."""
