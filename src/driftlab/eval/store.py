"""Resumable results store: SQLite, keyed by what determines a result.

The key is a hash of the model fingerprint (base weights + artifact weights), the exact text the model sees (chat
template applied), the decoding/scoring parameters and the request kind. A changed artifact therefore never reuses
a stale result, and a killed eval recomputes only what is missing. SQLite (stdlib) rather than a home-made file
format: atomic commits and concurrent readers for free.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from driftlab.errors import DriftlabError
from driftlab.eval.backend import Backend, Generation


def result_key(model_fp: str, kind: str, text: str, params: dict) -> str:
    payload = json.dumps({"model": model_fp, "kind": kind, "text": text, "params": params}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # timeout: a second eval writing the same store waits for the lock instead of failing at once
            self.db = sqlite3.connect(self.path, timeout=60)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                            "created REAL NOT NULL)")
            self.db.commit()
        except (sqlite3.Error, OSError) as err:
            raise DriftlabError(f"results store {self.path}: {err} (set eval.store_path, or pass --no-cache)") from None

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                found[key] = json.loads(value)
        return found

    def put_many(self, items: dict[str, object]) -> None:
        now = time.time()
        with self.db:  # one transaction: a kill leaves the whole batch stored or none of it
            self.db.executemany("INSERT OR REPLACE INTO results (key, value, created) VALUES (?, ?, ?)",
                                [(k, json.dumps(v), now) for k, v in items.items()])

    def close(self) -> None:
        self.db.close()


@contextmanager
def results_store(eval_cfg):
    """The store an eval config asks for — `eval.store_path`, default $DRIFTLAB_HOME/results.sqlite — or None with
    `eval.cache: false`; closed on exit. Only eval.open.open_backend opens it."""
    from driftlab.models import driftlab_home

    store = ResultStore(eval_cfg.store_path or driftlab_home() / "results.sqlite") if eval_cfg.cache else None
    try:
        yield store
    finally:
        if store is not None:
            store.close()


class CachedBackend:
    """Wraps a Backend: answers from the store where it can, computes the rest batch by batch, stores each batch
    as soon as it is done (so a killed run loses at most one batch). With no store (`eval.cache: false`) every
    call goes straight to the backend. Other attributes (`model`, `tok`) are the backend's."""

    def __init__(self, inner: Backend, store: ResultStore | None, fingerprint: str, batch_size: int, log=print):
        self.inner, self.store, self.fingerprint, self.batch_size, self.log = inner, store, fingerprint, batch_size, log
        self.hits = self.misses = 0

    def __getattr__(self, name: str):
        if name.startswith("_") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def chat(self, prompt) -> str:
        return self.inner.chat(prompt)

    def generate(self, prompts: list, max_new_tokens: int, stop: list[str] | None = None,
                 shared_prefix: str = "") -> list[Generation]:
        # the shared prefix is where the prefix cache ends, which the arithmetic depends on: part of the key
        params = {"max_new_tokens": max_new_tokens, "decoding": "greedy", **({"stop": stop} if stop else {}),
                  **({"shared_prefix": shared_prefix} if shared_prefix else {})}
        return self._cached(
            "generate", prompts, [params] * len(prompts),
            lambda idx: self.inner.generate([prompts[i] for i in idx], max_new_tokens, stop, shared_prefix),
            encode=_generation_dict, decode=lambda v: Generation(**v, cached=True))

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float, seed: int,
               stop: list[str] | None = None, shared_prefix: str = "") -> list[list[Generation]]:
        params = {"max_new_tokens": max_new_tokens, "decoding": "sample", "n": n, "temperature": temperature,
                  "seed": seed, "sampler": "gumbel-per-row", **({"stop": stop} if stop else {}),
                  **({"shared_prefix": shared_prefix} if shared_prefix else {})}
        return self._cached(
            "sample", prompts, [params] * len(prompts),
            lambda idx: self.inner.sample([prompts[i] for i in idx], max_new_tokens, n, temperature, seed, stop,
                                          shared_prefix),
            encode=lambda gs: [_generation_dict(g) for g in gs],
            decode=lambda v: [Generation(**g, cached=True) for g in v], rows_per_item=n)

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        params = {"max_new_tokens": max_new_tokens, "decoding": "greedy", "raw": True, **({"stop": stop} if stop else {})}
        return self._cached(
            "complete", texts, [params] * len(texts),
            lambda idx: self.inner.complete([texts[i] for i in idx], max_new_tokens, stop),
            encode=_generation_dict, decode=lambda v: Generation(**v, cached=True), render=lambda t: t)

    def loglik(self, prompts: list[str], choices: list[list[str]], shared_prefix: str = "") -> list[list[float]]:
        # Log-likelihood items are cheap and the backend batches them by padded shape, so they go to it 8 batches
        # at a time (fuller batches; a killed run loses a few seconds). A result does not depend on the grouping;
        # it does on the shared prefix (where the cache ends), which is therefore part of the key.
        extra = {"shared_prefix": shared_prefix} if shared_prefix else {}
        return self._cached(
            "loglik", prompts, [{"choices": c, **extra} for c in choices],
            lambda idx: self.inner.loglik([prompts[i] for i in idx], [choices[i] for i in idx], shared_prefix),
            batches_per_store=8)

    def _cached(self, kind: str, prompts: list, params: list[dict], compute, encode=lambda v: v,
                decode=lambda v: v, rows_per_item: int = 1, render=None, batches_per_store: int = 1) -> list:
        """The one store-or-compute loop behind every request kind: look every key up, compute the missing
        items `batch_size` rows (times `batches_per_store`) at a time via compute(indices), and store each such
        chunk as soon as it is done. Without a store every item is computed in one call, in order, as the backend
        itself would be asked."""
        if self.store is None:
            return list(compute(list(range(len(prompts)))))
        render = render or self.inner.chat  # the exact text the model sees is the key
        keys = [result_key(self.fingerprint, kind, render(p), pp) for p, pp in zip(prompts, params)]
        out = {k: decode(v) for k, v in self.store.get_many(keys).items()}
        todo = [i for i, k in enumerate(keys) if k not in out]
        self._report(len(prompts) - len(todo), len(todo), rows_per_item)
        step = max(1, self.batch_size // rows_per_item) * batches_per_store  # rows, not items, between two stores
        for start in range(0, len(todo), step):
            idx = todo[start : start + step]
            fresh = {keys[i]: result for i, result in zip(idx, compute(idx))}
            self.store.put_many({k: encode(v) for k, v in fresh.items()})
            out.update(fresh)
        return [out[k] for k in keys]

    def _report(self, hits: int, misses: int, rows_per_item: int = 1) -> None:
        self.hits += hits
        self.misses += misses
        if hits:
            self.log(f"results store: {hits} cached, {misses} to compute")
            advance = getattr(self.inner, "on_progress", None)
            if advance:
                advance(hits * rows_per_item)


def _generation_dict(g: Generation) -> dict:
    d = asdict(g)
    d.pop("cached", None)
    return d
