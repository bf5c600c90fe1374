"""flanlab: the Flan instruction-tuning system end to end."""

__version__ = "0.1.0"
