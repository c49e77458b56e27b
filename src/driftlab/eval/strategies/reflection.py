"""reflection: answer -> self-critique turn -> revised answer; the first answer is kept so changes are counted."""

from driftlab.eval.backend import Generation
from driftlab.eval.scoring import canonical_answers
from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput, shared_prefix
from driftlab.registry import Metric

REFLECT_INSTRUCTION = ("Check your answer carefully. If it is wrong, correct it. Reply with your final answer on a "
                       "last line of the form 'Answer: <answer>'.")


def run(cfg, backend, items, suite, budget, shots):
    first = backend.generate([it["prompt"] for it in items], budget, cfg.stop, shared_prefix(items))
    follow_up = [[{"role": "user", "content": it["prompt"]}, {"role": "assistant", "content": g.text},
                  {"role": "user", "content": REFLECT_INSTRUCTION}] for it, g in zip(items, first)]
    second = backend.generate(follow_up, budget, cfg.stop, shared_prefix(items))
    return [StrategyOutput(_combined(g1, g2), initial_text=g1.text, initial_finish=g1.finish)
            for g1, g2 in zip(first, second)]


def _combined(first: Generation, second: Generation) -> Generation:
    return Generation(second.text, first.n_tokens + second.n_tokens, second.finish,
                      first.latency_s + second.latency_s, first.cached and second.cached)


def summarize(records: list[dict], suite) -> dict:
    n = len(records)
    pairs = (canonical_answers([r["initial_extracted"], r["extracted"]], suite.scorer, r.get("choices"))
             for r in records)
    return {"initial_accuracy": sum(r["initial_correct"] for r in records) / n,
            "changed_rate": sum(a != b for a, b in pairs) / n,
            "right_to_wrong": sum(r["initial_correct"] and not r["correct"] for r in records),
            "wrong_to_right": sum(not r["initial_correct"] and r["correct"] for r in records)}


STRATEGIES.register(Strategy(
    name="reflection", summary="answer, self-critique turn, revised answer", order=50, run=run,
    rows_per_item=lambda cfg: 2, asks_for_format=True, summarize=summarize, metrics=(
        Metric("initial_accuracy", "higher", "accuracy of the first answer, before self-critique"),
        Metric("changed_rate", "neither", "share of items whose answer the critique changed"),
        Metric("right_to_wrong", "lower", "items the critique turned from right to wrong"),
        Metric("wrong_to_right", "higher", "items the critique turned from wrong to right"))))
