"""Stage 5 — compare: paired base-vs-tuned statistics per suite."""

from driftlab.compare.paired import compare_evals, compare_suite

__all__ = ["compare_evals", "compare_suite"]
