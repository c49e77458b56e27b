"""few_shot: k solved exemplars as earlier chat turns, drawn from the *train* split (never from eval items)."""

from pydantic import Field

from driftlab.errors import DataError
from driftlab.eval.scoring import normalize_text
from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput
from driftlab.registry import Options


class FewShotOptions(Options):
    k: int = Field(3, ge=1, description="few_shot: exemplars per item, from the train split.")


def few_shot_messages(items: list[dict], shots: list[dict], k: int) -> list[list[dict]]:
    """Each eval item preceded by k exemplar turns; exemplars rotate so items do not all see the same k."""
    eval_prompts = {normalize_text(it["prompt"]) for it in items}
    pool = [s for s in shots if normalize_text(s["prompt"]) not in eval_prompts]  # never an eval item
    if len(pool) < k:
        raise DataError(f"few_shot needs {k} exemplars that are not eval items, only {len(pool)} available")
    convs = []
    for i, it in enumerate(items):
        chosen = [pool[(i * k + j) % len(pool)] for j in range(k)]
        turns = []
        for ex in chosen:
            turns += [{"role": "user", "content": ex["prompt"]}, {"role": "assistant", "content": ex["completion"]}]
        convs.append(turns + [{"role": "user", "content": it["prompt"]}])
    return convs


def run(cfg, backend, items, suite, budget, shots):
    convs = few_shot_messages(items, shots, cfg.options.k)
    return [StrategyOutput(g) for g in backend.generate(convs, budget, cfg.stop)]


STRATEGIES.register(Strategy(name="few_shot", summary="k solved train-split exemplars as earlier chat turns", order=20,
                             options=FewShotOptions, run=run, exemplars_needed=lambda cfg: cfg.options.k))
