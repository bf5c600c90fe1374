"""Tasks and instruction templates in the Flan formats."""
