"""Slot decoding: the HF backend's GPU path. A fixed number of slots decode on transformers' static KV cache; a row
that stops frees its slot, and once a quarter of the slots are free the waiting rows are prefilled into them in one
pass (refill), so the batch stays at least three quarters full until the queue is empty; every decode step has the
same shapes, which is what lets it run as a compiled graph (torch.compile, CUDA graphs: transformers'
`get_compiled_call`, the call `generate` uses for a static cache).

The static cache (transformers' StaticCache, its tensors updated in place) is laid out in columns:

    [ shared prefix (p columns, the same in every slot) | each slot's tokens, right-aligned at column c | free ]

Every slot writes its next key/value at the same column c (transformers' static cache keeps one write column), so a
row joining at column c is placed at [c - width, c): its prompt's keys and values, computed by an ordinary prefill
on the prefix cache, are copied into its slot's rows; the columns of earlier rows of that slot are masked out. The
positions a row sees are its own (explicit position ids), not the columns, so a gap of masked columns changes
nothing but where the numbers lie. When c reaches the end of the cache, every slot is shifted left past the
columns no live row uses (compaction); the cache holds at least 1.5 x (the widest prompt + the reply budget) so
that happens rarely.

Why not transformers' continuous batching (`generate_batch`): it schedules from a background thread (which rows
share a step depends on timing, and bf16 results depend on what shares a step), has no per-row stop strings or
per-row random streams, and needs its paged attention. Here the schedule is a function of the rows alone: the
same rows give the same replies, run after run (README, Guarantees).
"""

from __future__ import annotations

import math
from collections import deque

import torch

from driftlab.eval.hf_backend import GumbelSampler, _cache_rows, _returned_cache, positions


def static_cache_supported(config) -> bool:
    """Whether every layer of a model's static cache (from its config) is a plain full-attention StaticLayer: the
    layout above assumes one write column for all rows, and sliding-window layers roll their columns. Attention
    whose keys and values differ in width (multi-head latent attention) is not laid out here either."""
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    text = config.get_text_config(decoder=True)
    if getattr(text, "v_head_dim", None) or getattr(text, "qk_rope_head_dim", None):
        return False
    try:
        cache = StaticCache(config=config, max_cache_len=8)
    except Exception:  # an architecture without a static cache
        return False
    return all(type(layer) is StaticLayer for layer in cache.layers)


class SlotDecoder:
    """Decode rows on `slots` slots of a static KV cache, refilling slots as rows stop."""

    def __init__(self, backend, compiled: bool):
        """Slots for `backend` (an HFBackend: its model, batch size as the number of slots, and row layout)."""
        self.backend, self.compiled = backend, compiled
        self.model, self.cache_arg = backend.model, backend.cache_arg
        self.slots, self.device, self.pad_id = backend.batch_size, backend.device, backend.tok.pad_token_id
        self.step_fn, self._caches = self.model, {}  # static caches by (slots, length), kept: see _static_cache
        if compiled:
            from transformers import CompileConfig

            # static shapes (dynamic=False): one graph per cache length, never a dynamic-shape one beside them
            self.step_fn = self.model.get_compiled_call(CompileConfig(dynamic=False))

    @torch.inference_mode()
    def run(self, seqs: list[list[int]], prefix: list[int], prefix_cache, max_new_tokens: int, done_ids: set[int],
            finished, pick=None, on_done=lambda: None) -> list[list[int]]:
        """New tokens of every row of `seqs` (each row's own tokens, after the shared `prefix`, whose one-row
        cache is `prefix_cache`; none when `prefix` is empty), admitted in the order given. `finished(tokens)`
        says whether a row's tokens end it (a stop string); a token in `done_ids` ends it too and is kept. `pick`:
        (temperature, one seed per row) for Gumbel-max sampling, or None for greedy. `on_done()` as each row ends
        (a progress bar)."""
        # compiled: always all slots, and cache lengths from a few buckets (powers of two): few shapes, each compiled
        # once as a static graph; uncompiled: no more slots than rows, the length rounded to 64
        n, p, slots = len(seqs), len(prefix), self.slots if self.compiled else min(self.slots, len(seqs))
        need = p + math.ceil(1.5 * (max(map(len, seqs)) + max_new_tokens)) + 1
        length = max(256, 1 << (need - 1).bit_length()) if self.compiled else _round_up(need, 64)
        cache = self._static_cache(length, slots, prefix_cache, p)
        mask = torch.zeros((slots, length), dtype=torch.long, device=self.device)
        mask[:, :p] = 1
        feed = torch.full((slots,), self.pad_id, dtype=torch.long, device=self.device)
        feed_pos = torch.zeros((slots,), dtype=torch.long, device=self.device)
        moving = torch.zeros((slots,), dtype=torch.long, device=self.device)  # 1 where a slot decodes a row
        row_of: list[int | None] = [None] * slots  # which row each slot decodes
        start = [p] * slots  # first column of each slot's row
        sampler = GumbelSampler(pick[0], [0] * slots, self.device) if pick else None
        rows: list[list[int]] = [[] for _ in range(n)]
        queue, c = deque(range(n)), p
        refill_at = max(1, slots // 4)  # a prefill is an uncompiled pass: admit rows a few at a time

        def take(slot_ids: list[int], tokens: list[int]) -> None:
            """Append each slot's new token to its row; a row that ends frees its slot."""
            for s, t in zip(slot_ids, tokens):
                r = row_of[s]
                rows[r].append(t)
                if t in done_ids or finished(rows[r]) or len(rows[r]) >= max_new_tokens:
                    # an idle slot feeds padding at position 0 until refilled: a RoPE scaled by the batch's largest
                    # position (dynamic NTK, longrope) sees the rows' positions only
                    row_of[s] = None
                    feed[s], feed_pos[s], moving[s] = self.pad_id, 0, 0
                    on_done()
                else:
                    feed[s] = t

        while True:
            free = [s for s in range(slots) if row_of[s] is None]
            alive = slots - len(free)
            if queue and (len(free) >= refill_at or not alive):
                admit = [queue.popleft() for _ in range(min(len(free), len(queue)))]
                c = self._admit(cache, admit, free[: len(admit)], seqs, prefix, prefix_cache, c, length, mask, start,
                                row_of, feed_pos, moving, sampler, pick, take)
                continue  # an admitted row may stop at its first token
            if not alive:
                break
            if c >= length:  # no column left: shift every slot past the columns no live row uses
                c = self._compact(cache, mask, start, row_of, p, c)
            mask[:, c] = 1
            out = self._step(input_ids=feed[:, None], attention_mask=mask, position_ids=feed_pos[:, None],
                             use_cache=True, logits_to_keep=1, **{self.cache_arg: cache})
            c += 1
            feed_pos += moving
            scores = out.logits[:, -1, :].float()
            nxt = (sampler(None, scores) if sampler else scores).argmax(-1).tolist()
            live = [s for s in range(slots) if row_of[s] is not None]
            take(live, [nxt[s] for s in live])
        return rows

    def _step(self, **inputs):
        """One decode step; a compiled step that fails says which setting turns compiling off."""
        if self.step_fn is self.model:
            return self.model(**inputs)
        try:
            return self.step_fn(**inputs)
        except torch.OutOfMemoryError:
            raise  # memory, not the compiler: eval.batch_size is the setting
        except Exception as err:
            from driftlab.errors import DriftlabError

            raise DriftlabError(f"the compiled decode step failed ({type(err).__name__}: {str(err)[:300]}); set "
                                "eval.compile: off (or eval.decoding: dynamic) to decode uncompiled") from err

    def _static_cache(self, length: int, slots: int, prefix_cache, p: int):
        """The static cache for `slots` rows of `length` columns, with the prefix in its first `p` columns. Compiled,
        one of each shape is kept and reused rather than allocated anew: a CUDA graph is recorded on its tensors'
        addresses (the lengths come from a few power-of-two buckets, so together they hold at most twice the
        largest); uncompiled, only the last one is kept. What a cache held before does not count: a row's attention
        weight on any column not written for it is masked to exactly zero."""
        from transformers import StaticCache

        cache = self._caches.get((slots, length))
        if cache is None:
            if not self.compiled:
                self._caches.clear()  # the old one's memory first
            cfg = self.model.config.get_text_config(decoder=True)
            heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            cache = StaticCache(config=self.model.config, max_cache_len=length)
            cache.early_initialization(slots, heads, head_dim, self.model.dtype, self.device)
            self._caches[(slots, length)] = cache
        for layer, src in zip(cache.layers, prefix_cache.layers if p else []):
            layer.keys[:, :, :p] = src.keys[:, :, :p]
            layer.values[:, :, :p] = src.values[:, :, :p]
        for layer in cache.layers:
            layer.cumulative_length.fill_(p)
        return cache

    def _admit(self, cache, admit, slot_ids, seqs, prefix, prefix_cache, c, length, mask, start, row_of, feed_pos,
               moving, sampler, pick, take) -> int:
        """Prefill rows `admit` (left-padded together, on the prefix cache) into slots `slot_ids`; returns the
        write column (moved right when the prompts do not fit left of it)."""
        p = len(prefix)
        batch = self.backend._left_pad([seqs[r] for r in admit], prefix)  # the dynamic path's layout
        full_mask, width = batch["attention_mask"], batch["input_ids"].shape[1] - p
        own_mask, pos = full_mask[:, p:], positions(full_mask)[:, p:]
        dyn = _cache_rows(prefix_cache, len(admit)) if p else None
        out = self.model(input_ids=batch["input_ids"][:, p:], attention_mask=full_mask, position_ids=pos,
                         use_cache=True, logits_to_keep=1, **{self.cache_arg: dyn})
        dyn = _returned_cache(out)
        if c - width < p:  # the prompts need more columns left of the write column: move it (a masked gap)
            c = p + width
            if c >= length:
                raise RuntimeError("slot decoding: a prompt does not fit the static cache")  # sized so it does
            for layer in cache.layers:
                layer.cumulative_length.fill_(c)
        sel = torch.tensor(slot_ids, device=self.device)
        for layer, src in zip(cache.layers, dyn.layers):
            layer.keys[sel, :, c - width : c] = src.keys[:, :, p : p + width]
            layer.values[sel, :, c - width : c] = src.values[:, :, p : p + width]
        mask[sel, p:] = 0
        mask[sel, c - width : c] = own_mask
        feed_pos[sel] = pos[:, -1] + 1
        moving[sel] = 1
        for s, r in zip(slot_ids, admit):
            row_of[s], start[s] = r, c - width
            if sampler:
                sampler.generators[s] = torch.Generator(device=self.device).manual_seed(pick[1][r])
        scores = out.logits[:, -1, :].float()
        if sampler:
            gens = sampler.generators
            sampler.generators = [gens[s] for s in slot_ids]
            scores = sampler(None, scores)
            sampler.generators = gens
        take(slot_ids, scores.argmax(-1).tolist())
        return c

    def _compact(self, cache, mask, start, row_of, p: int, c: int) -> int:
        """Shift every slot's columns left past those no live row uses; returns the new write column."""
        first = min(start[s] for s in range(len(row_of)) if row_of[s] is not None)
        shift = first - p
        if shift <= 0:
            raise RuntimeError("slot decoding: the static cache is full")  # sized so it is not
        for layer in cache.layers:
            layer.keys[:, :, p : c - shift] = layer.keys[:, :, first:c].clone()
            layer.values[:, :, p : c - shift] = layer.values[:, :, first:c].clone()
            layer.cumulative_length.fill_(c - shift)
        mask[:, p : c - shift] = mask[:, first:c].clone()
        mask[:, c - shift :] = 0
        for s in range(len(start)):
            start[s] = max(p, start[s] - shift)
        return c - shift


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step
