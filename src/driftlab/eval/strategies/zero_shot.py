"""zero_shot: the item's prompt as it is."""

from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput, shared_prefix


def run(cfg, backend, items, suite, budget, shots):
    prompts = [it["prompt"] for it in items]
    return [StrategyOutput(g) for g in backend.generate(prompts, budget, cfg.stop, shared_prefix(items))]


STRATEGIES.register(Strategy(name="zero_shot", summary="the item's prompt as it is", order=10, run=run))
