"""The base model, persona LoRA training, PEFT adapter folders (with lineage and integrity) and export."""
