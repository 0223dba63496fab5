"""Evaluation of targets on the test split: lm-evaluation-harness for single models, debates for teams."""
