"""Stage 2 — train: fine-tune the base model with TRL (+ PEFT). The recipe is sft.py (`train_model`,
`resume_training`); each method is a module of methods/."""


def __getattr__(name: str):
    """`from driftlab.train import train_model` keeps working without importing TRL when the package is imported
    (the method registry lives below it and is read while a config is validated)."""
    if name in ("train_model", "resume_training"):
        from driftlab.train import sft

        return getattr(sft, name)
    raise AttributeError(name)
