"""`correct`: 1 when the answer read from the completion is right by the target suite's scorer, else 0 — the
eval's own judgement (eval.run.evaluate_suite's), so a reward is earned exactly where accuracy would count it."""

from __future__ import annotations

from driftlab.train.rewards import REWARDS, Reward


def make(suite):
    from driftlab.eval.extract import extract_for
    from driftlab.eval.run import _reasoning_gym_scorer
    from driftlab.eval.scoring import score

    rg_score = _reasoning_gym_scorer(suite) if suite.scorer == "reasoning_gym" else None

    def correct(text: str, item: dict) -> float:
        ex = extract_for(text, suite)
        if ex.answer is None:
            return 0.0
        if rg_score is not None:
            return float(rg_score(ex.answer, item)[0])
        return float(score(ex.answer, item["answer"], suite.scorer, item.get("choices"))[0])

    return correct


REWARDS.register(Reward(name="correct", summary="1 if the suite's scorer counts the extracted answer right", order=10,
                        make=make))
