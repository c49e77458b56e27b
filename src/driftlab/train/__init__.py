"""Stage 2 — train: fine-tune the base model with TRL (+ PEFT). The recipe is sft.py (`train_model`,
`resume_training`); each method is a module of methods/."""
