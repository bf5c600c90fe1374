"""Reports: markdown, HTML and plots from run folders."""
