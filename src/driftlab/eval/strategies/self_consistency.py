"""self_consistency: n samples at a temperature, majority vote over *normalised extracted answers*; consistency =
share of samples that agree with the vote."""

from collections import Counter

from pydantic import Field

from driftlab.eval.backend import Generation
from driftlab.eval.extract import extract_for
from driftlab.eval.scoring import canonical_answers
from driftlab.eval.strategies import STRATEGIES, Strategy, StrategyOutput, shared_prefix
from driftlab.registry import Metric, Options


class SelfConsistencyOptions(Options):
    n: int = Field(5, ge=2, description="self_consistency: samples per item.")
    temperature: float = Field(0.7, gt=0, description="self_consistency: sampling temperature.")
    seed: int = Field(0, description="self_consistency: sampling seed (per item, independent of batching).")


def majority_vote(samples: list[Generation], suite, choices: list[str] | None = None) -> StrategyOutput:
    """Vote over canonical extracted answers (not over scores): the winning sample is the reply that is scored.
    Under strict extraction a sample cut by the token budget has no answer and does not vote."""
    cut = suite.extraction == "strict"
    answers = [None if cut and s.finish == "length" else extract_for(s.text, suite).answer for s in samples]
    keys = canonical_answers(answers, suite.scorer, choices)
    counts = Counter(k for k in keys if k is not None)
    if counts:
        winner, votes = counts.most_common(1)[0]
        chosen = samples[keys.index(winner)]
    else:
        winner, votes, chosen = None, 0, samples[0]
    total_tokens = sum(s.n_tokens for s in samples)
    gen = Generation(chosen.text, total_tokens, chosen.finish, sum(s.latency_s for s in samples),
                     all(s.cached for s in samples))
    return StrategyOutput(gen, extra={"votes": dict(counts), "n_samples": len(samples),
                                      "consistency": votes / len(samples)})


def run(cfg, backend, items, suite, budget, shots):
    o = cfg.options
    samples = backend.sample([it["prompt"] for it in items], budget, o.n, o.temperature, o.seed, cfg.stop,
                             shared_prefix(items))
    return [majority_vote(s, suite, it.get("choices")) for s, it in zip(samples, items)]


def summarize(records: list[dict], suite) -> dict:
    return {"consistency": sum(r["consistency"] for r in records) / len(records)}


STRATEGIES.register(Strategy(
    name="self_consistency", summary="majority vote over the extracted answers of n samples", order=40,
    options=SelfConsistencyOptions, run=run, rows_per_item=lambda cfg: cfg.options.n, summarize=summarize,
    metrics=(Metric("consistency", "neither", "share of samples agreeing with the vote (1 = every sample alike)"),)))
