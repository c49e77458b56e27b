"""Prompting strategies: how an item is asked. Each turns items into backend requests and returns, per item, the
final reply that gets extracted and scored, plus what the strategy itself measured.

zero_shot        the item's prompt as is
few_shot         k solved exemplars as earlier chat turns, drawn from the *train* split (never from eval items)
cot              ask for step-by-step reasoning, then a final `Answer:` line
self_consistency n samples at a temperature, majority vote over *normalised extracted answers*; consistency =
                 share of samples that agree with the vote
reflection       answer -> self-critique turn -> revised answer; the first answer is kept so changes are counted
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from driftlab.config import StrategyConfig, SuiteConfig
from driftlab.eval.backend import Backend, Generation
from driftlab.eval.extract import extract_answer
from driftlab.errors import DataError
from driftlab.eval.scoring import normalize_text, pick_choice

COT_INSTRUCTION = "Think step by step, then give your final answer on a last line of the form 'Answer: <answer>'."
REFLECT_INSTRUCTION = ("Check your answer carefully. If it is wrong, correct it. Reply with your final answer on a "
                       "last line of the form 'Answer: <answer>'.")


@dataclass
class StrategyOutput:
    generation: Generation  # the final reply (text, tokens, latency)
    extra: dict = field(default_factory=dict)  # what the strategy measured (votes, initial answer, ...)
    initial_text: str | None = None  # reflection: the answer before self-critique


def run_strategy(strategy: StrategyConfig, backend: Backend, items: list[dict], suite: SuiteConfig,
                 max_new_tokens: int, shots: list[dict]) -> list[StrategyOutput]:
    budget, stop = strategy.max_new_tokens or max_new_tokens, strategy.stop
    if strategy.name == "zero_shot":
        return [StrategyOutput(g) for g in backend.generate([it["prompt"] for it in items], budget, stop)]
    if strategy.name == "few_shot":
        return [StrategyOutput(g)
                for g in backend.generate(few_shot_messages(items, shots, strategy.k), budget, stop)]
    if strategy.name == "cot":
        return [StrategyOutput(g) for g in backend.generate([cot_prompt(it["prompt"]) for it in items], budget, stop)]
    if strategy.name == "self_consistency":
        samples = backend.sample([it["prompt"] for it in items], budget, strategy.n, strategy.temperature,
                                 strategy.seed, stop)
        return [majority_vote(s, suite.scorer, it.get("choices")) for s, it in zip(samples, items)]
    if strategy.name == "reflection":
        first = backend.generate([it["prompt"] for it in items], budget, stop)
        follow_up = [[{"role": "user", "content": it["prompt"]}, {"role": "assistant", "content": g.text},
                      {"role": "user", "content": REFLECT_INSTRUCTION}] for it, g in zip(items, first)]
        second = backend.generate(follow_up, budget, stop)
        return [StrategyOutput(_combined(g1, g2), initial_text=g1.text) for g1, g2 in zip(first, second)]
    raise ValueError(f"unknown strategy {strategy.name!r}")  # config validation makes this unreachable


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


def cot_prompt(prompt: str) -> str:
    return f"{prompt}\n{COT_INSTRUCTION}"


def canonical_answers(answers: list[str | None], scorer: str, choices: list[str] | None = None) -> list[str | None]:
    """One key per meaning: 'B', 'B) Paris' and 'Paris' are one choice; 1/2 and 0.5 are one number under 'math'."""
    if scorer == "choice":
        return [(pick_choice(a, choices or []) or normalize_text(a)) if a is not None else None for a in answers]
    if scorer != "math":
        return [normalize_text(a) if a is not None else None for a in answers]
    from math_verify import parse, verify

    reps: list[str] = []
    keys = []
    for a in answers:
        if a is None:
            keys.append(None)
            continue
        match = None
        for r in reps:
            try:
                if verify(parse(r), parse(a)):
                    match = r
                    break
            except Exception:  # unparseable: falls back to its own text below
                continue
        if match is None:
            reps.append(a)
            match = a
        keys.append(normalize_text(match))
    return keys


def majority_vote(samples: list[Generation], scorer: str, choices: list[str] | None = None) -> StrategyOutput:
    """Vote over canonical extracted answers (not over scores): the winning sample is the reply that is scored."""
    answers = [extract_answer(s.text, scorer).answer for s in samples]
    keys = canonical_answers(answers, scorer, choices)
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


def _combined(first: Generation, second: Generation) -> Generation:
    return Generation(second.text, first.n_tokens + second.n_tokens, second.finish,
                      first.latency_s + second.latency_s, first.cached and second.cached)
