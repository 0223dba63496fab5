"""evoswarm: evolve populations of cooperating LoRA-adapted LLM agents."""
