"""Stage 3 — eval: items + a prompting strategy + a scorer, run through a generation backend."""

from driftlab.eval.run import evaluate_model, evaluate_suite

__all__ = ["evaluate_model", "evaluate_suite"]
