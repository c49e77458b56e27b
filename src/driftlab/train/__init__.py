"""Stage 2 — train: fine-tune the base model with TRL (+ PEFT), one method per `train.method`."""

from driftlab.train.sft import resume_training, train_model

__all__ = ["train_model", "resume_training"]
