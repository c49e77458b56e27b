"""Resumable results store: SQLite, keyed by what determines a result.

The key is a hash of the model fingerprint (base weights + artifact weights), the exact text the model sees (chat
template applied), the decoding/scoring parameters, the request kind, and the chunk of items it was computed with
(batched arithmetic depends on the batch: CachedBackend._cached). A changed artifact therefore never reuses
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
            raise self._error(err) from None

    def get_many(self, keys: list[str]) -> dict[str, object]:
        found: dict[str, object] = {}
        try:
            for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self.db.execute(f"SELECT key, value FROM results WHERE key IN ({marks})", chunk):
                    found[key] = json.loads(value)
        except (sqlite3.Error, ValueError) as err:  # a damaged page, or a value that is not the JSON written
            raise self._error(err) from None
        return found

    def put_many(self, items: dict[str, object]) -> None:
        now = time.time()
        try:
            with self.db:  # one transaction: a kill leaves the whole batch stored or none of it
                self.db.executemany("INSERT OR REPLACE INTO results (key, value, created) VALUES (?, ?, ?)",
                                    [(k, json.dumps(v), now) for k, v in items.items()])
        except sqlite3.Error as err:  # a damaged file, a full disk
            raise self._error(err) from None

    def _error(self, err: Exception) -> DriftlabError:
        """One line for a store that cannot be opened, read or written: what SQLite said, and the way out (results
        are recomputed without it; a damaged file can be moved aside — driftlab never deletes it)."""
        return DriftlabError(f"results store {self.path}: {err} (move it aside or set eval.store_path to start a new "
                             "one, or pass --no-cache)")

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
    """Wraps a Backend: cuts every call into chunks that are a function of its items, answers a chunk from the
    store where it can, computes the rest chunk by chunk and stores each as soon as it is done (so a killed run
    loses at most one chunk). With no store (`eval.cache: false`) every chunk goes straight to the backend, cut the
    same way. Other attributes (`model`, `tok`) are the backend's."""

    def __init__(self, inner: Backend, store: ResultStore | None, fingerprint: str, batch_size: int, log=print,
                 refill_batches: int = 1):
        self.inner, self.store, self.fingerprint, self.batch_size, self.log = inner, store, fingerprint, batch_size, log
        self.refill = refill_batches  # generation chunks of this many batches (slot decoding refills from them)
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
            encode=_generation_dict, decode=lambda v: Generation(**v, cached=True), batches_per_store=self.refill)

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
            decode=lambda v: [Generation(**g, cached=True) for g in v], rows_per_item=n,
            batches_per_store=self.refill)

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        params = {"max_new_tokens": max_new_tokens, "decoding": "greedy", "raw": True, **({"stop": stop} if stop else {})}
        return self._cached(
            "complete", texts, [params] * len(texts),
            lambda idx: self.inner.complete([texts[i] for i in idx], max_new_tokens, stop),
            encode=_generation_dict, decode=lambda v: Generation(**v, cached=True), render=lambda t: t,
            batches_per_store=self.refill)

    def loglik(self, prompts: list[str], choices: list[list[str]], shared_prefix: str = "") -> list[list[float]]:
        # Log-likelihood items are cheap and the backend batches them by padded shape, so they go to it 8 batches
        # at a time (fuller batches; a killed run loses a few seconds). A result depends on the shared prefix
        # (where the cache ends), which is therefore part of the key.
        extra = {"shared_prefix": shared_prefix} if shared_prefix else {}
        return self._cached(
            "loglik", prompts, [{"choices": c, **extra} for c in choices],
            lambda idx: self.inner.loglik([prompts[i] for i in idx], [choices[i] for i in idx], shared_prefix),
            batches_per_store=8)

    def _cached(self, kind: str, prompts: list, params: list[dict], compute, encode=lambda v: v,
                decode=lambda v: v, rows_per_item: int = 1, render=None, batches_per_store: int = 1) -> list:
        """The one store-or-compute loop behind every request kind.

        Batched arithmetic is not batch-invariant (bf16 attention rounds differently for another padded width,
        float32 matrix products for another number of rows), so an item's result depends on which items share its
        batch. The batches are therefore a function of the call's items alone (`plan_chunks`: longest first, then
        in the caller's order), never of what the store already holds, and a stored result is keyed by its whole
        chunk as well as by itself: a chunk is taken from the store only when every item of it is there, and
        otherwise computed whole, as it would be without a store. With the store on, off, empty or half-filled by a
        killed run, every item gets the same result. Each chunk (`batch_size` rows, times `batches_per_store`) is
        stored in one transaction as soon as it is done, so a kill loses at most one chunk."""
        render = render or self.inner.chat  # the exact text the model sees is the key
        texts = [render(p) for p in prompts]
        step = max(1, self.batch_size // rows_per_item) * batches_per_store  # items per chunk
        chunks = plan_chunks(texts, step)
        out: list = [None] * len(prompts)
        if self.store is None:
            for idx in chunks:
                for i, result in zip(idx, compute(idx)):
                    out[i] = result
            return out
        item_keys = [result_key(self.fingerprint, kind, t, pp) for t, pp in zip(texts, params)]
        keys = [""] * len(prompts)
        for idx in chunks:
            chunk = hashlib.sha256(json.dumps([self.batch_size, [item_keys[i] for i in idx]]).encode()).hexdigest()
            for i in idx:
                keys[i] = hashlib.sha256(f"{chunk}|{item_keys[i]}".encode()).hexdigest()
        found = self.store.get_many(keys)
        todo = []
        for idx in chunks:
            if all(keys[i] in found for i in idx):
                for i in idx:
                    out[i] = decode(found[keys[i]])
            else:
                todo.append(idx)
        n_todo = sum(map(len, todo))
        self._report(len(prompts) - n_todo, n_todo, rows_per_item)
        for idx in todo:
            fresh = list(compute(idx))
            self.store.put_many({keys[i]: encode(v) for i, v in zip(idx, fresh)})
            for i, v in zip(idx, fresh):
                out[i] = v
        return out

    def _report(self, hits: int, misses: int, rows_per_item: int = 1) -> None:
        self.hits += hits
        self.misses += misses
        if hits:
            self.log(f"results store: {hits} cached, {misses} to compute")
            advance = getattr(self.inner, "on_progress", None)
            if advance:
                advance(hits * rows_per_item)


def plan_chunks(texts: list[str], size: int) -> list[list[int]]:
    """The call's items in chunks of `size`, longest text first (similar lengths share a batch: less padding), ties
    in the caller's order: a function of the items alone."""
    order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
    return [order[k : k + size] for k in range(0, len(order), size)]


def _generation_dict(g: Generation) -> dict:
    d = asdict(g)
    d.pop("cached", None)
    return d
