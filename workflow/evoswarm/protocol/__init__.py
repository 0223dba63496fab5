"""The debate protocol's texts and rules: prompts, turn parsing, scoring and chat rendering.

Below the models and the backends: training, every backend and the evaluator build and read turns here,
so an agent is asked at test time exactly what it was trained on."""
