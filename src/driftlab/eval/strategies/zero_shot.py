"""zero_shot: the item's prompt as it is."""

from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput


def run(cfg, backend, items, suite, budget, shots):
    return [StrategyOutput(g) for g in backend.generate([it["prompt"] for it in items], budget, cfg.stop)]


STRATEGIES.register(Strategy(name="zero_shot", summary="the item's prompt as it is", order=10, run=run))
