"""Finetuning: T5 and decoder-only models, packed, loss on targets only."""
