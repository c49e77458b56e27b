"""cot: ask for step-by-step reasoning, then a final `Answer:` line."""

from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput, shared_prefix

COT_INSTRUCTION = "Think step by step, then give your final answer on a last line of the form 'Answer: <answer>'."


def cot_prompt(prompt: str) -> str:
    return f"{prompt}\n{COT_INSTRUCTION}"


def run(cfg, backend, items, suite, budget, shots):
    prompts = [cot_prompt(it["prompt"]) for it in items]
    return [StrategyOutput(g) for g in backend.generate(prompts, budget, cfg.stop, shared_prefix(items))]


STRATEGIES.register(Strategy(name="cot", summary="step-by-step reasoning, then a final 'Answer:' line", order=30,
                             run=run, asks_for_format=True))
