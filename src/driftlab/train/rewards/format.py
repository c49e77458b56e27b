"""`format`: 1 when the completion states its answer the way the suite asks (strict extraction finds it: an
`Answer: ...` line for the built-in templates), else 0. A shaping reward: on its own it pays for form, not for
being right — weight it below `correct`."""

from __future__ import annotations

from driftlab.train.rewards import REWARDS, Reward


def make(suite):
    from driftlab.eval.extract import extract_answer

    def format_(text: str, item: dict) -> float:
        ex = extract_answer(text, suite.scorer, "strict", suite.pattern, suite.match)
        return float(ex.answer is not None and ex.format_ok)

    return format_


REWARDS.register(Reward(name="format", summary="1 if the reply states its answer in the suite's format", order=20,
                        make=make))
