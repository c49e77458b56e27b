"""Chain-of-thought training targets (train.chains): gold chains, or the base model's own chains that reach the
right answer.

A chain row's prompt is the target's prompt with the `cot` strategy's instruction (eval/strategies/cot.py), so a
chain-trained model is trained on, and measured by the `cot` strategy with, one prompt; its completion is the chain
followed by the target's own answer line, so it still ends in the format the eval reads.

gold  a step-by-step solution written from each item (data/chains.py; one writer per task family).
self  rejection sampling (STaR, Zelikman et al. 2022; rejection-sampling fine-tuning, Yuan et al. 2023): `k` chains
      per training question from the base model — per-row seeds, batched, answered from and kept in the results
      store — kept where the answer read from the reply is right by the target suite's scorer. The answer is read
      leniently (an `Answer:` line, else the chain's last number): a base model that reasons to the right result but
      skips the asked format still gives its chain, which then ends in the target's answer line. Dropped: chains cut
      by the token budget, replies with no reasoning before the answer, wrong answers, repeats (whitespace aside),
      and kept chains beyond `per_question`. The yield goes into the train summary; zero yield is an error, never
      an empty or silently tiny training set.
"""

from __future__ import annotations

from driftlab.config import ChainsConfig, EvalConfig
from driftlab.data.chains import gold_chain
from driftlab.errors import DataError
from driftlab.eval.extract import extract_answer
from driftlab.eval.scoring import score
from driftlab.eval.strategies.cot import cot_prompt
from driftlab.models import ModelUnderTest
from driftlab.probes.faithfulness import MIN_CHAIN_WORDS, split_chain

DISTILL_SEED_OFFSET = 30_000_019  # sampling streams far from eval's and replay's


def chain_targets(items: list[dict], cfg: ChainsConfig, scorer: str | None, base: ModelUnderTest, seed: int,
                  eval_cfg: EvalConfig) -> tuple[list[dict], dict]:
    """(training rows with chains, what went into them) for the target's training items."""
    if cfg.source == "gold":
        rows = [chain_row(it, gold_chain(it, _family(it), "train.chains.source")) for it in items]
        return rows, {"source": "gold", "rows": len(rows)}
    if scorer is None:
        raise DataError("config key 'train.chains.source': self-distilled chains need the target suite's scorer")
    return self_distilled(items, cfg, scorer, base, seed, eval_cfg)


def chain_row(item: dict, chain: str) -> dict:
    return {**item, "prompt": cot_prompt(item["prompt"]), "completion": f"{chain.strip()}\n{item['completion']}",
            "meta": {**item.get("meta", {}), "chain": True}}


def self_distilled(items: list[dict], cfg: ChainsConfig, scorer: str, base: ModelUnderTest, seed: int,
                   eval_cfg: EvalConfig) -> tuple[list[dict], dict]:
    from driftlab.eval.open import open_backend

    questions = items[: cfg.questions] if cfg.questions else items
    prompts = [cot_prompt(it["prompt"]) for it in questions]
    with open_backend(base, eval_cfg, log=lambda m: print(f"self-distillation: {m}")) as backend:
        samples = backend.sample(prompts, cfg.max_new_tokens, cfg.k, cfg.temperature, seed + DISTILL_SEED_OFFSET)
    counts = {"cut_by_budget": 0, "no_chain": 0, "wrong": 0, "duplicates": 0, "over_cap": 0}
    rows, answered = [], 0
    for item, replies in zip(questions, samples):
        kept: list[str] = []
        for reply in replies:
            chain = split_chain(reply.text)
            reason = _rejection(reply, chain, item, scorer, kept)
            if reason is None and len(kept) >= cfg.per_question:
                reason = "over_cap"
            if reason:
                counts[reason] += 1
            else:
                kept.append(chain)
        answered += bool(kept)
        rows += [chain_row(item, chain) for chain in kept]
    sampled = len(questions) * cfg.k
    report = {"source": "self", "questions": len(questions), "sampled": sampled, "kept": len(rows),
              "questions_with_chain": answered, "yield_questions": answered / len(questions),
              "yield_chains": len(rows) / sampled, **counts}
    if not rows:
        raise DataError(
            f"config key 'train.chains': self-distillation kept none of {sampled} sampled chains (yield 0; "
            f"{counts['cut_by_budget']} cut by max_new_tokens={cfg.max_new_tokens}, {counts['wrong']} wrong, "
            f"{counts['no_chain']} without reasoning): the base model does not solve this target when asked to "
            "reason. Use chains.source: gold, or raise k, temperature or max_new_tokens.")
    return rows, report


def _rejection(reply, chain: str, item: dict, scorer: str, kept: list[str]) -> str | None:
    """Why a sampled reply (whose reasoning is `chain`) is not kept (None: keep it)."""
    if reply.finish == "length":
        return "cut_by_budget"
    if len(chain.split()) < MIN_CHAIN_WORDS:
        return "no_chain"
    ok, _ = score(extract_answer(reply.text, scorer, "lenient").answer, item["answer"], scorer, item.get("choices"))
    if not ok:
        return "wrong"
    if " ".join(chain.split()) in {" ".join(k.split()) for k in kept}:
        return "duplicates"
    return None


def _family(item: dict) -> str | None:
    meta = item.get("meta", {})
    return meta.get("source_dataset") or meta.get("task")
