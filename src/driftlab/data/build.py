"""Build the study's data: target train/eval split, held-out suites, dedup and a contamination check.

Recipe: draw eval items for every suite, draw training items for the target from a far-away seed, drop exact
duplicates, drop every training item whose prompt also appears in any eval suite (and report how many), render
prompts and completions, write everything to the run directory.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from driftlab.config import DataConfig, SuiteConfig
from driftlab.data.perturb import perturb_item
from driftlab.data.sources import file_items, reasoning_gym_items
from driftlab.errors import ConfigError, DataError
from driftlab.runs import write_json, write_jsonl

# reasoning-gym seeds item i with Random(seed + i): seeds s and s+1 give shifted copies of the same items, so the
# training stream starts far away from the eval stream. The contamination check below still verifies it.
TRAIN_SEED_OFFSET = 10_000_019
GENERATED_TRAIN_SIZE = 800  # training items drawn from a generator when data.target.train_size is not set


@dataclass
class DataBundle:
    train: list[dict]
    suites: dict[str, list[dict]]  # suite name -> eval items; the target suite first
    roles: dict[str, str]  # suite name -> "target" | "heldout"
    report: dict = field(default_factory=dict)
    shots: dict[str, list[dict]] = field(default_factory=dict)  # few-shot exemplars per suite, never eval items

    def eval_questions(self) -> set[str]:
        """Every eval question, normalised: what replay/training data may not contain."""
        return {normalize(it["question"]) for items in self.suites.values() for it in items}


def build_data(cfg: DataConfig, seed: int, out_dir: Path | None = None) -> DataBundle:
    skipped: dict[str, int] = {}
    suites: dict[str, list[dict]] = {}
    all_suites = [cfg.target, *cfg.heldout]
    for i, suite in enumerate(all_suites):
        key = "data.target" if i == 0 else f"data.heldout (suite {suite.name!r})"  # a family's suites share an entry
        raw, skipped[suite.name] = _draw(suite, key, seed, n_extra=suite.size // 5 + 10, on_bad_row=cfg.on_bad_row)
        if suite.source != "reasoning_gym" and suite is cfg.target:
            # A user file is both the train and eval pool: shuffle once, eval takes the head.
            random.Random(_suite_seed(suite, seed)).shuffle(raw)
        if suite.perturb:
            rng = random.Random(_suite_seed(suite, seed) + 17)
            raw = [perturb_item(it, suite.perturb, rng, suite.name) for it in raw]
        suites[suite.name] = _render(_dedup(raw)[: suite.size], suite, seed)
        shared = shared_prefix([it["prompt"] for it in suites[suite.name]])
        for it in suites[suite.name]:
            it["shared_prefix"] = shared

    target = cfg.target
    eval_prompts = _eval_prompts(suites)
    train, overlap = _train_split(target, "data.target", seed, cfg.on_bad_row, eval_prompts)

    report = {
        "train": len(train),
        "suites": {name: len(items) for name, items in suites.items()},
        "contamination": {
            "removed_from_train": overlap,
            "train_eval_overlap_after_removal": _overlap_count(train, suites),
        },
        "skipped_bad_rows": skipped,
    }
    shots = {target.name: train}
    for i, suite in enumerate(cfg.heldout):
        shots[suite.name] = _shots(suite, f"data.heldout.{i}", seed, cfg.on_bad_row, eval_prompts)
    bundle = DataBundle(train, suites, {s.name: ("target" if s is target else "heldout") for s in all_suites}, report,
                        shots)
    if out_dir is not None:
        write_data(bundle, out_dir)
    return bundle


def variant_items(cfg, train_cfg, key: str, bundle: DataBundle) -> tuple[SuiteConfig, list[dict]]:
    """A fine-tune's target suite and training items: the study's, or with `train.items` its own — drawn from the
    target with those keys changed, as the target's are, and checked against every eval item of the study."""
    if not train_cfg.items:
        return cfg.data.target, bundle.train
    try:
        suite = cfg.train_target(train_cfg, key)
    except ValueError as err:  # a study's variants were checked at load; `driftlab train --set train.items...` not
        where, _, msg = str(err).partition(": ")
        raise ConfigError(f"config key '{where}': {msg}") from None
    size_key = f"{key}.train_size" if "train_size" in train_cfg.items else "data.target.train_size"
    train, _ = _train_split(suite, key, cfg.seed, cfg.data.on_bad_row, _eval_prompts(bundle.suites),
                            skip_head=suite.path == cfg.data.target.path, size_key=size_key)
    return suite, train


def _eval_prompts(suites: dict[str, list[dict]]) -> dict[str, set[str]]:
    """Per suite, its eval questions normalised: what training items are checked against (and counted by)."""
    return {name: {normalize(it["question"]) for it in items} for name, items in suites.items()}


def _train_split(target: SuiteConfig, key: str, seed: int, on_bad_row: str, eval_prompts: dict[str, set[str]],
                 skip_head: bool = True, size_key: str | None = None) -> tuple[list[dict], dict[str, int]]:
    """`target.train_size` training items: a generator's stream from a far-away seed, or a file's rows after the
    eval head of the same shuffle; duplicates and every item that is an eval prompt of any suite removed. Without a
    train_size: a file's every remaining row, a generator's GENERATED_TRAIN_SIZE."""
    wanted = target.train_size or (GENERATED_TRAIN_SIZE if target.source == "reasoning_gym" else None)
    if target.source != "reasoning_gym":
        pool, _ = _file_items(target, on_bad_row)
        random.Random(_suite_seed(target, seed)).shuffle(pool)
        train_raw = _dedup(pool)[target.size if skip_head else 0 :]  # the same shuffle as the eval: its head
    else:
        train_raw, _ = _draw(target, key, seed, n_extra=wanted // 5 + 10, on_bad_row=on_bad_row, size=wanted,
                             offset=TRAIN_SEED_OFFSET)
    overlap = {name: 0 for name in eval_prompts}
    clean = []
    for item in _dedup(train_raw):
        hits = [name for name, prompts in eval_prompts.items() if normalize(item["question"]) in prompts]
        for name in hits:
            overlap[name] += 1
        if not hits:
            clean.append(item)
    train = _render(clean[:wanted], target, seed, split="train")
    if len(train) < (wanted or 1):
        asked = f"asked for {wanted} training items but" if wanted else "no training items:"
        head = f" (the first {target.size} rows are the eval's)" if not wanted and skip_head else ""
        raise DataError(
            f"config key '{size_key or key + '.train_size'}': {asked} only {len(train)} remain after removing "
            f"duplicates and eval overlaps{head} ({sum(overlap.values())} overlaps)"
        )
    return train, overlap


def write_data(bundle: DataBundle, out_dir: Path) -> None:
    write_jsonl(out_dir / "train.jsonl", bundle.train)
    for name, items in bundle.suites.items():
        write_jsonl(out_dir / "suites" / f"{name}.jsonl", items)
    write_json(out_dir / "data.json", {**bundle.report, "roles": bundle.roles})


def shared_prefix(prompts: list[str]) -> str:
    """The text every prompt of a suite starts with ("In which country is the city of", a worked example), cut back
    to a word boundary. The HF backend runs it once per call, as a cache (eval/hf_backend.py). Computed over the
    suite as built, and stored in each item, so an item's result never depends on which other items share its
    batch or its call."""
    if len(prompts) < 2:
        return ""
    common = os.path.commonprefix(prompts)
    cut = max(common.rfind(c) for c in " \n\t")  # the last word of `common` may go on differently in each prompt
    return common[:cut].rstrip() if cut > 0 else ""


def normalize(text: str) -> str:
    """Prompt identity for dedup/contamination: case- and whitespace-insensitive."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _draw(suite: SuiteConfig, key: str, seed: int, n_extra: int, on_bad_row: str, size: int | None = None,
          offset: int = 0):
    size = size or suite.size
    if suite.source == "reasoning_gym":
        gen_seed = _suite_seed(suite, seed) + offset
        items = reasoning_gym_items(suite.task, suite.task_kwargs, size + n_extra, gen_seed, key)
        return items, 0
    return _file_items(suite, on_bad_row)


def _file_items(suite: SuiteConfig, on_bad_row: str) -> tuple[list[dict], int]:
    items, skipped = file_items(suite.path, suite.source, on_bad_row, suite.fields)
    if suite.family is not None:  # one step count of a multi-step family: the rows with that many terms
        items = [it for it in items if str(it["meta"].get("terms")) == str(suite.terms[0])]
        if not items:
            raise DataError(f"{suite.path}: no rows with 'terms' = {suite.terms[0]} (suite {suite.name!r}, "
                            f"family {suite.family!r})")
    return items, skipped


def _suite_seed(suite: SuiteConfig, seed: int) -> int:
    if suite.seed is not None:
        return suite.seed
    # Stable per-suite seed (no Python hash(): it is salted per process).
    return seed * 7919 + sum(ord(c) * (i + 1) for i, c in enumerate(suite.name))


def _dedup(items: list[dict]) -> list[dict]:
    seen, out = set(), []
    for item in items:
        k = normalize(item["question"])
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def _render(items: list[dict], suite: SuiteConfig, seed: int, split: str = "eval") -> list[dict]:
    out = []
    for i, item in enumerate(items):
        choices = _choices(item, suite, seed, i)
        prompt = suite.template.replace("{question}", item["question"])
        if choices and "{choices}" in prompt:
            prompt = prompt.replace("{choices}", "\n".join(f"{chr(65 + k)}) {c}" for k, c in enumerate(choices)))
        out.append({
            "id": f"{suite.name}-{split}-{i:05d}",
            "suite": suite.name,
            "question": item["question"],
            "answer": item["answer"],
            "prompt": prompt,
            # a file's own completion (TRL prompt/completion or messages rows) is the training target as written
            "completion": item.get("completion") or suite.completion_template.replace("{answer}", item["answer"]),
            "choices": choices,
            "meta": item["meta"],
        })
    return out


def _choices(item: dict, suite: SuiteConfig, seed: int, index: int) -> list[str] | None:
    if suite.mode != "loglik" and suite.scorer != "choice":
        return None
    if isinstance(suite.choices, list):
        if item["answer"] not in suite.choices:
            raise DataError(f"suite '{suite.name}': gold answer {item['answer']!r} is not in choices {suite.choices}")
        return list(suite.choices)
    if suite.choices == "item":
        if not item.get("choices"):
            raise DataError(f"suite '{suite.name}': mode 'loglik' with choices 'item' but an item has no 'choices'")
        return list(item["choices"])
    try:
        gold = int(item["answer"])
    except ValueError:
        raise DataError(f"suite '{suite.name}': choices 'numeric_nearby' needs integer answers, got "
                        f"{item['answer']!r}") from None
    rng = random.Random(seed * 1_000_003 + index)
    offsets = [d for d in range(-6, 7) if d != 0 and (gold < 0 or gold + d >= 0)]
    options = [gold] + [gold + d for d in rng.sample(offsets, 3)]
    rng.shuffle(options)
    return [str(o) for o in options]


def _shots(suite: SuiteConfig, key: str, seed: int, on_bad_row: str, eval_prompts: dict[str, set[str]],
           k: int = 16) -> list[dict]:
    """A few solved exemplars for a held-out suite: its generator's train stream, or a file's rows past `size`;
    anything that is also an eval prompt anywhere is dropped."""
    if suite.source == "reasoning_gym":
        raw, _ = _draw(suite, key, seed, n_extra=0, on_bad_row=on_bad_row, size=k, offset=2 * TRAIN_SEED_OFFSET)
    else:
        raw = _dedup(_draw(suite, key, seed, n_extra=0, on_bad_row=on_bad_row)[0])[suite.size : suite.size + k]
    seen = set().union(*eval_prompts.values())
    return _render([it for it in _dedup(raw) if normalize(it["question"]) not in seen], suite, seed, split="shot")


def _overlap_count(train: list[dict], suites: dict[str, list[dict]]) -> int:
    train_prompts = {normalize(it["question"]) for it in train}
    return sum(normalize(it["question"]) in train_prompts for items in suites.values() for it in items)
