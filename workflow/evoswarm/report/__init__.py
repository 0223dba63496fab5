"""The report over every seed: paired statistics and verdicts, tables, plots, and the study's table."""
