"""Rewards for GRPO (train.objective: grpo): one module per reward in this package, each registering a `Reward` in
REWARDS; `train.grpo.rewards` names them with weights. A reward judges a completion against its training item with
the target suite's own rules (scorer, extraction), so what RL is paid for is what the eval counts.

To add a reward: a new module here that calls `REWARDS.register(Reward(...))` with `make(suite) -> score(text,
item) -> float`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from driftlab.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Reward(Entry):
    make: Callable  # (target SuiteConfig) -> (completion text, training item) -> float


REWARDS: Registry[Reward] = Registry("reward", __name__)


def reward_functions(specs, suite, budget: int | None = None, eos: int | None = None) -> tuple[list[Callable],
                                                                                            list[float]]:
    """TRL reward functions (named after their reward: TRL logs `rewards/<name>/mean`) and their weights. TRL passes
    the completions, their token ids and every dataset column; the `item` column holds the training item as JSON.
    Under strict extraction a completion cut by the token `budget` (no `eos` at its end) earns nothing, as the eval
    never counts such a reply right."""
    import json

    funcs = []
    for spec in specs:
        score = REWARDS.get(spec.name).make(suite)

        def func(prompts, completions, item, completion_ids=None, _score=score, **_):
            ids = completion_ids or [None] * len(completions)
            return [0.0 if _cut(c_ids, budget, eos) and suite.extraction == "strict"
                    else float(_score(_text(c), json.loads(i))) for c, i, c_ids in zip(completions, item, ids)]

        func.__name__ = spec.name
        funcs.append(func)
    return funcs, [spec.weight for spec in specs]


def _cut(ids, budget: int | None, eos: int | None) -> bool:
    return bool(ids is not None and budget and len(ids) >= budget and (not ids or ids[-1] != eos))


def _text(completion) -> str:
    """A conversational completion is a list of messages; a plain one is text."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return completion
