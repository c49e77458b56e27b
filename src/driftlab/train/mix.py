"""The training set: target items, optional template augmentation, and replay sources mixed in (train.mix).

Replay is the standard mitigation against forgetting: keep showing the model something besides the target.
Sources: another reasoning-gym task, a user file, or *self-replay* — the base model's own greedy replies to general
prompts (bundled, or the user's), generated once through the eval backend and kept in the results store, so replay
needs no external data and a second run costs nothing. Several target-like sources make it multi-task training.
Replay items that are eval prompts anywhere are dropped (contamination), and the counts are reported.
"""

from __future__ import annotations

import random

from driftlab.config import EvalConfig, MixSource, TrainConfig
from driftlab.data.build import normalize
from driftlab.data.sources import file_items, reasoning_gym_items, replay_prompts
from driftlab.errors import DataError
from driftlab.models import ModelUnderTest
from driftlab.train.chains import chain_targets

MIX_SEED_OFFSET = 20_000_033  # replay generators draw far from any eval or train stream


def build_training_set(items: list[dict], cfg: TrainConfig, base: ModelUnderTest, seed: int, exclude: set[str],
                       eval_cfg: EvalConfig | None = None, scorer: str | None = None) -> tuple[list[dict], dict]:
    """(training rows, what went into them). `base`: the model whose own replies self-replay and self-distilled
    chains use; `scorer`: the target suite's, which judges self-distilled chains."""
    rng = random.Random(seed * 31 + 7)
    target = [_augment(it, cfg.augment_templates, rng) for it in items] if cfg.augment_templates else list(items)
    chains = None
    if cfg.chains.source != "none":
        target, chains = chain_targets(target, cfg.chains, scorer, base, seed, eval_cfg or EvalConfig())
    mixed, report = list(target), {"target": len(target), "augmented_templates": len(cfg.augment_templates),
                                   "sources": {}, **({"chains": chains} if chains else {})}
    for i, src in enumerate(cfg.mix):
        want = max(1, round(src.ratio * len(target)))  # per target row (self-distilled chains can be fewer)
        raw = _source_items(src, want, seed + i, base, f"train.mix.{i}", eval_cfg or EvalConfig())
        clean = [r for r in raw if normalize(r["question"]) not in exclude]
        if len(clean) < want:
            raise DataError(f"config key 'train.mix.{i}' ({src.name}): ratio {src.ratio} needs {want} items, "
                            f"{len(clean)} usable ({len(raw) - len(clean)} were eval prompts)")
        mixed += [_render(r, src, k) for k, r in enumerate(clean[:want])]
        report["sources"][src.name] = {"source": src.source, "items": want,
                                       "removed_eval_overlap": len(raw) - len(clean)}
    rng.shuffle(mixed)  # replay spread over the run; also what a held-out eval split (eval_fraction) draws from
    return mixed, report


def _augment(item: dict, templates: list[str], rng: random.Random) -> dict:
    """The item with its prompt re-rendered by one of the extra phrasings (or kept: the original is one choice)."""
    pick = rng.randrange(len(templates) + 1)
    if pick == len(templates):
        return item
    return {**item, "prompt": templates[pick].replace("{question}", item["question"])}


def _source_items(src: MixSource, want: int, seed: int, base: ModelUnderTest, key: str,
                  eval_cfg: EvalConfig) -> list[dict]:
    extra = want // 5 + 10  # headroom for dropped eval overlaps
    if src.source == "reasoning_gym":
        return reasoning_gym_items(src.task, src.task_kwargs, want + extra, seed + MIX_SEED_OFFSET, key)
    if src.source in ("jsonl", "csv", "parquet"):
        rows, _ = file_items(src.path, src.source)
        random.Random(seed).shuffle(rows)
        return rows
    return self_replay(src, base, want + extra, key, eval_cfg)


def self_replay(src: MixSource, base: ModelUnderTest, n: int, key: str, eval_cfg: EvalConfig | None = None
                ) -> list[dict]:
    """The base model's greedy replies to up to n general prompts; replies cut off at max_new_tokens are dropped
    (training on them would teach the model to stop mid-sentence)."""
    from driftlab.eval.open import open_backend

    prompts = replay_prompts(src.path)[:n]  # the bundled file's tail is the drift probe's, never trained on
    eval_cfg = eval_cfg or EvalConfig()  # the study's: same backend, batch size and results store (or none)
    with open_backend(base, eval_cfg, log=lambda m: print(f"self-replay: {m}")) as backend:
        replies = backend.generate([p["question"] for p in prompts], src.max_new_tokens)
    rows = [{"question": p["question"], "answer": g.text.strip(), "meta": {"self_replay": True}}
            for p, g in zip(prompts, replies) if g.finish == "stop" and g.text.strip()]
    if not rows:
        raise DataError(f"config key '{key}': every self-replay reply hit max_new_tokens={src.max_new_tokens}; "
                        "raise it")
    return rows


def _render(row: dict, src: MixSource, k: int) -> dict:
    return {"id": f"mix-{src.name}-{k:05d}", "suite": f"mix:{src.name}", "question": row["question"],
            "answer": row["answer"], "prompt": src.template.replace("{question}", row["question"]),
            "completion": src.completion_template.replace("{answer}", row["answer"]), "choices": None,
            "meta": row.get("meta", {})}
