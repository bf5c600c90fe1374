"""Mixtures: examples-proportional sampling with caps, streamed to shards."""
