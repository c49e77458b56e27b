"""The HF backend: batched greedy decoding, per-row seeded sampling and log-likelihood scoring with a transformers
causal LM (the default; CPU or GPU). Generation runs on dynamic batches here, or on refilled static slots
(eval/slots.py: `eval.decoding`, the GPU's default)."""

from __future__ import annotations

import copy
import inspect
import time

import torch
from transformers import LogitsProcessor

from driftlab.eval.backend import Generation, row_seed, render_chat


class HFBackend:
    """Batched greedy decoding and log-likelihood scoring with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 32, system_prompt: str | None = None,
                 enable_thinking: bool | None = None, on_progress=None, decoding: str = "dynamic",
                 compiled: bool = False):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)
        self.device = next(model.parameters()).device
        # transformers renamed `past_key_values` to `cache` (5.2x: the old name warns, and goes in 5.40)
        self.cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        _warn_ignored_generation_config(model)
        self.slots = None  # decoding "static": eval/slots.py (fixed slots on a static KV cache, refilled)
        if decoding == "static":
            from driftlab.eval.slots import SlotDecoder

            self.slots = SlotDecoder(self, compiled)

    def chat(self, prompt: str | list[dict]) -> str:
        return render_chat(self.tok, prompt, self.system_prompt, self.enable_thinking)

    def generate(self, prompts: list, max_new_tokens: int, stop: list[str] | None = None,
                 shared_prefix: str = "") -> list[Generation]:
        encoded = [self.tok(self.chat(p), add_special_tokens=False).input_ids for p in prompts]
        return self._decode_rows(encoded, max_new_tokens, stop or [], None, shared_prefix)

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        encoded = [self.tok(t, add_special_tokens=False).input_ids for t in texts]
        return self._decode_rows(encoded, max_new_tokens, stop or [], None)

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float, seed: int,
               stop: list[str] | None = None, shared_prefix: str = "") -> list[list[Generation]]:
        """n sampled replies per prompt, batched across prompts. Each reply draws from its own random stream,
        seeded by `seed`, the prompt text and the sample index, so it does not depend on which other prompts
        share the run or the batch."""
        rows, seeds = [], []
        for prompt in prompts:
            text = self.chat(prompt)
            ids = self.tok(text, add_special_tokens=False).input_ids
            for j in range(n):
                rows.append(ids)
                seeds.append(row_seed(seed, text, j))
        flat = self._decode_rows(rows, max_new_tokens, stop or [], (temperature, seeds), shared_prefix)
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    @torch.inference_mode()
    def _decode_rows(self, encoded: list[list[int]], max_new_tokens: int, stop: list[str],
                     sampler: tuple[float, list[int]] | None, shared_prefix: str = "") -> list[Generation]:
        """Decode every row, `batch_size` rows at a time, longest prompts first (similar lengths share a batch:
        less padding, and memory peaks early). Greedy, or sampling when `sampler` = (temperature, row seeds).
        A row stops at an end-of-turn token or at one of the `stop` strings (each row on its own) and leaves its
        batch at once (_decode_batch).

        The text every prompt starts with — the chat prefix, and `shared_prefix` of the user's text where the
        caller knows one (a suite's worked example: data.build.shared_prefix) — runs once per call, as a cache:
        rows are laid out as [prefix | left padding | own tokens] and only what follows the prefix is run. Where a
        row's tokens do not begin with the prefix's, it falls back to the chat prefix, or to none. The prefix is a
        function of the suite, not of the batch, so a row's layout does not depend on its batch-mates."""
        results: list[Generation | None] = [None] * len(encoded)
        eos = _stop_ids(self.tok, self.model)
        prefixes, which, caches = self._prefixes(encoded, shared_prefix)
        # Rows on different prefixes (or none: raw text, another template) never share a batch.
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        groups = [[i for i in order if which[i] == k] for k in sorted(set(which))]
        if self.slots is not None:
            for idx in groups:
                self._decode_slots(idx, encoded, prefixes, which, caches, max_new_tokens, eos, stop, sampler, results)
            return results  # type: ignore[return-value]
        batches = [g[k : k + self.batch_size] for g in groups for k in range(0, len(g), self.batch_size)]
        for idx in batches:
            cache, p, k = None, 0, which[idx[0]]
            if k >= 0:
                p = len(prefixes[k])
                batch = self._left_pad([encoded[i][p:] for i in idx], prefixes[k])
                cache = _cache_rows(caches[k], len(idx))
            else:
                batch = self._left_pad([encoded[i] for i in idx])
            pick = GumbelSampler(sampler[0], [sampler[1][i] for i in idx], self.device) if sampler else None
            t0 = time.perf_counter()
            rows = self._decode_batch(batch, cache, p, max_new_tokens, eos, stop, pick)
            dt = (time.perf_counter() - t0) / len(idx)
            for row, i in zip(rows, idx):
                results[i] = self._decode(row, eos, dt, stop)
            self.on_progress(len(idx))
        return results  # type: ignore[return-value]

    def _decode_slots(self, idx: list[int], encoded, prefixes, which, caches, max_new_tokens: int, eos: list[int],
                      stop: list[str], sampler, results: list) -> None:
        """Decode rows `idx` (one prefix group, longest first) on the slot decoder (eval/slots.py)."""
        k = which[idx[0]]
        prefix = prefixes[k] if k >= 0 else []
        done_ids = set(eos) | {self.tok.pad_token_id}
        pick = (sampler[0], [sampler[1][i] for i in idx]) if sampler else None
        t0 = time.perf_counter()
        rows = self.slots.run([encoded[i][len(prefix):] for i in idx], prefix, caches.get(k), max_new_tokens,
                              done_ids, lambda tokens: bool(stop) and self._ends_with_stop(tokens, stop), pick,
                              on_done=lambda: self.on_progress(1))
        dt = (time.perf_counter() - t0) / len(idx)
        for row, i in zip(rows, idx):
            results[i] = self._decode(row, eos, dt, stop)

    def _decode_batch(self, batch: dict, cache, p: int, max_new_tokens: int, eos: list[int], stop: list[str],
                      pick: GumbelSampler | None) -> list[list[int]]:
        """New tokens of every row of one left-padded batch (on a cache of its first `p` columns, or none).

        Written out rather than `model.generate` so that a row that has stopped leaves the batch at once: its
        rows of the KV cache, mask and positions are dropped, and the steps after it run on the rows still going
        (HF generate computes every row until the batch's last one stops; a chain model's replies vary from ten to a
        hundred tokens). Each step is what generate does for greedy search: logits of the last position in float32,
        the sampler's Gumbel noise added when sampling, argmax; positions from the attention mask's running count.
        A row's tokens end with the end-of-turn token that stopped it, if any (a stop string ends it without one)."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        pos = positions(mask)
        done_ids = torch.tensor(sorted(set(eos) | {self.tok.pad_token_id}), device=self.device)
        rows: list[list[int]] = [[] for _ in range(len(ids))]
        alive, done = list(range(len(ids))), set()
        feed, feed_pos = ids[:, p:], pos[:, p:]
        for step in range(max_new_tokens):
            out = self.model(input_ids=feed, attention_mask=mask, position_ids=feed_pos, use_cache=True,
                             logits_to_keep=1, **{self.cache_arg: cache})
            cache = _returned_cache(out)
            scores = out.logits[:, -1, :].float()
            nxt = (pick(None, scores) if pick else scores).argmax(-1)
            stopped = torch.isin(nxt, done_ids).tolist()
            for k, (r, tok) in enumerate(zip(alive, nxt.tolist())):
                if r in done:  # only where the cache could not drop a stopped row
                    continue
                rows[r].append(tok)
                if stop and not stopped[k]:
                    stopped[k] = self._ends_with_stop(rows[r], stop)
            done.update(r for r, s in zip(alive, stopped) if s)
            keep = [k for k, r in enumerate(alive) if r not in done]
            if not keep or step == max_new_tokens - 1:
                break
            if len(keep) < len(alive) and hasattr(cache, "batch_select_indices"):  # finished rows leave the batch
                sel = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(sel)
                mask, feed_pos, nxt = mask[sel], feed_pos[sel], nxt[sel]
                alive = [alive[k] for k in keep]
                if pick:
                    pick.keep(keep)
            # (a cache that cannot drop rows keeps them, as generate does: their tokens are computed, not kept)
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            feed, feed_pos = nxt[:, None], feed_pos[:, -1:] + 1
        return rows

    def _ends_with_stop(self, tokens: list[int], stop: list[str]) -> bool:
        """Whether one of the `stop` strings has appeared in a reply: it first appears at the end, so only a tail
        of tokens long enough to hold it is decoded."""
        window = 2 * max(map(len, stop)) + 4
        text = self.tok.decode(tokens[-window:], skip_special_tokens=True)
        return any(s in text for s in stop)

    def _decode(self, row: list[int], eos: list[int], latency: float, stop: list[str] = ()) -> Generation:
        n = next((k for k, t in enumerate(row) if t in eos or t == self.tok.pad_token_id), None)  # HF pads a
        tokens = row if n is None else row[:n]  # row after it stops (a stop string ends it without an eos token)
        text = self.tok.decode(tokens, skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:  # a stop string ended the row: the reply is what came before it (as in OpenAI/vLLM APIs)
            return Generation(text[:cut], len(tokens), "stop", latency)
        return Generation(text, len(tokens), "length" if n is None else "stop", latency)

    @torch.inference_mode()
    def loglik(self, prompts: list[str], choices: list[list[str]], shared_prefix: str = "") -> list[list[float]]:
        """Sum of log p(choice tokens | chat prompt) for every choice of every prompt (lm-eval's 'acc'), scored
        `batch_size` prompts at a time. Context and choices are encoded separately, as lm-eval does, so a choice's
        tokens are exactly its own whatever the context ends with.

        One forward pass per batch scores a prompt and all of its choices: the text every prompt starts with — the
        chat prefix (system message, user header), and `shared_prefix` of the user's text where the caller knows
        one (data.build.shared_prefix) — is run once per call and reused as a cache, then each row holds a prompt's
        own tokens followed by every choice's tokens, and an attention mask lets each choice see the prompt and its own
        earlier tokens only (a tree of continuations; benchmarks/NOTES.md has the figures). Needs an attention that
        takes a 4D mask (eager, SDPA), which is what `load_model` gives.

        A prompt's scores do not depend on which prompts share its batch (the results store computes only the
        missing items, so batches differ between runs): rows do not mix, and the padded shape a prompt is scored in
        is a function of the prompt (and the shared prefix) alone. Prompts are grouped by that shape; widths are
        rounded up to buckets, so prompts of similar lengths share a group. Without that, attention on the CPU rounds
        differently for other sequence lengths (tests/unit/test_backend.py)."""
        ctxs = [self.tok(self.chat(p), add_special_tokens=False).input_ids for p in prompts]
        conts = [[self.tok(c, add_special_tokens=False).input_ids for c in opts] for opts in choices]
        if any(not c for cs in conts for c in cs):
            raise ValueError("loglik: a choice encodes to no tokens (an empty string?)")
        prefixes, which, caches = self._prefixes(ctxs, shared_prefix)
        groups: dict[tuple, list[int]] = {}
        for i in range(len(prompts)):
            own = len(ctxs[i]) - (len(prefixes[which[i]]) if which[i] >= 0 else 0)
            tails = sum(len(c) - 1 for c in conts[i])
            groups.setdefault((which[i], _bucket(own, BUCKET), _bucket(tails, BUCKET)), []).append(i)
        out: list[list[float] | None] = [None] * len(prompts)
        for (k, width, tail_width), idx in sorted(groups.items()):
            p = len(prefixes[k]) if k >= 0 else 0
            for start in range(0, len(idx), self.batch_size):
                batch = idx[start : start + self.batch_size]
                cache = _cache_rows(caches[k], len(batch)) if k >= 0 else None
                scores = self._score_batch(p, cache, [ctxs[i][p:] for i in batch], [conts[i] for i in batch], width,
                                           tail_width)
                for i, s in zip(batch, scores):
                    out[i] = s
                self.on_progress(len(batch))
        return out  # type: ignore[return-value]

    def _chat_prefix(self, user_start: str = "") -> list[int]:
        """Token ids of the chat text before the user's message (the same for every prompt), and of `user_start`,
        the start of that message, if given."""
        marker = "\x00driftlab\x00"
        text = self.chat(user_start + marker)
        return self.tok(text[: text.index(marker)], add_special_tokens=False).input_ids if marker in text else []

    def _prefixes(self, seqs: list[list[int]], shared_prefix: str) -> tuple[list[list[int]], list[int], dict]:
        """The prefixes rows may share (chat prefix + `shared_prefix`, then the chat prefix alone), which one each
        row starts with (the longest; -1: none — a row whose tokens do not begin with the shared text's, a
        tokenizer merging across the boundary, falls back to the chat prefix), and a one-row KV cache of each
        prefix in use, computed once per call and copied per batch (_cache_rows)."""
        prefixes = [self._chat_prefix(shared_prefix)] if shared_prefix else []
        prefixes = [p for p in prefixes + [self._chat_prefix()] if p]
        which = _which_prefix(seqs, prefixes)
        caches = {k: self._prefix_cache(prefixes[k]) for k in set(which) if k >= 0}
        return prefixes, which, caches

    def _prefix_cache(self, prefix: list[int]):
        return _returned_cache(self.model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True))

    def _score_batch(self, p: int, cache, rests: list[list[int]], conts: list[list[list[int]]], width: int,
                     tail_width: int) -> list[list[float]]:
        """One forward pass for a batch, on the shared prefix's cache (`p` tokens, one row per prompt, or none).
        Row r holds its prompt's own tokens (right-padded to `width`), then every choice's tokens but the last, one
        choice after the other (right-padded to `tail_width`). Token 0 of every choice is predicted by the prompt's last
        position, token t of choice j by choice j's position t-1, which sees the prefix, the prompt and choice j's
        earlier tokens only. Pad positions see the prefix and themselves (a defined softmax), and nobody sees them."""
        dev, pad, n = self.device, self.tok.pad_token_id, len(rests)
        total = width + tail_width
        ids = torch.full((n, total), pad)
        pos = torch.arange(p, p + total).repeat(n, 1)
        allow = torch.zeros((n, total, p + total), dtype=torch.bool)
        allow[:, :, :p] = True
        allow[:, torch.arange(total), p + torch.arange(total)] = True
        causal = torch.ones((total, total), dtype=torch.bool).tril()
        targets = []  # per row, per choice: (column predicting its token 0, its tokens, its first column)
        for r, (rest, cs) in enumerate(zip(rests, conts)):
            n_ctx = len(rest)
            ids[r, :n_ctx] = torch.tensor(rest)
            allow[r, :n_ctx, p : p + n_ctx] = causal[:n_ctx, :n_ctx]
            col, row_targets = width, []
            for c in cs:
                fed = c[:-1]
                span = slice(col, col + len(fed))
                ids[r, span] = torch.tensor(fed, dtype=torch.long)
                pos[r, span] = p + n_ctx + torch.arange(len(fed))
                allow[r, span, p : p + n_ctx] = True
                allow[r, span, p + col : p + col + len(fed)] = causal[: len(fed), : len(fed)]
                row_targets.append((col, c))
                col += len(fed)
            targets.append([(n_ctx - 1, c, start) for start, c in row_targets])
        dtype = self.model.dtype
        mask = torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, torch.finfo(dtype).min)[:, None]
        # The LM head runs on a range of columns fixed by the shape: the prompt bucket's last BUCKET positions,
        # where every prompt's last token lies, and the choices' region.
        first = max(width - BUCKET, 0)
        keep = torch.arange(first, total, device=dev)
        logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                            use_cache=cache is not None, logits_to_keep=keep, **{self.cache_arg: cache}).logits
        logp = logits.float().log_softmax(-1)
        scores = []
        for r, row_targets in enumerate(targets):
            row = []
            for last, c, start in row_targets:
                cols = torch.tensor([last] + list(range(start, start + len(c) - 1)), device=dev) - first
                row.append(logp[r, cols, torch.tensor(c, device=dev)].sum().item())
            scores.append(row)
        return scores

    def _left_pad(self, seqs: list[list[int]], prefix: list[int] = ()) -> dict:
        """Rows of `prefix` (shared, may be empty), then left padding, then each row's own tokens."""
        p, width = len(prefix), max(map(len, seqs))
        ids = torch.full((len(seqs), p + width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        if p:
            ids[:, :p], mask[:, :p] = torch.tensor(prefix), 1
        for r, s in enumerate(seqs):
            ids[r, p + width - len(s) :] = torch.tensor(s)
            mask[r, p + width - len(s) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}


BUCKET = 4  # prompts' own lengths are rounded up to a multiple of this: padding vs. the number of shapes


def _which_prefix(seqs: list[list[int]], prefixes: list[list[int]]) -> list[int]:
    """For each token sequence, the index of the first of `prefixes` it starts with and runs past (-1: none)."""
    return [next((k for k, p in enumerate(prefixes) if len(s) > len(p) and s[: len(p)] == p), -1) for s in seqs]


def positions(mask):
    """Position ids of left-padded rows: each token's index among its row's real tokens (padding gets 1, a value
    nothing reads: it is masked)."""
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill_(mask == 0, 1)


def _returned_cache(out):
    """The KV cache a forward pass returned (transformers 5.2x names it `cache`, earlier `past_key_values`)."""
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


def _cache_rows(prefix_cache, n: int):
    """A copy of a one-row prefix cache with n rows (the original is reused for the next batch)."""
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(n)
    return cache


def _warn_ignored_generation_config(model) -> None:
    """driftlab decodes plainly (greedy, or Gumbel-max sampling at the asked temperature), as the vLLM backend does:
    penalties and constraints a checkpoint's generation_config sets (Qwen2.5-Instruct: repetition_penalty 1.05) are
    not applied. Say so once, rather than measure a model under decoding rules the caller did not ask for unseen."""
    import warnings

    gc = getattr(model, "generation_config", None)
    neutral = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_repetition_penalty": 1.0,
               "min_new_tokens": None, "suppress_tokens": None, "bad_words_ids": None}
    set_ = {k: getattr(gc, k, None) for k in neutral if getattr(gc, k, None) not in (neutral[k], None)}
    if set_:
        warnings.warn(f"the model's generation_config sets {set_}; driftlab's HF backend does not apply them "
                      "(plain greedy or temperature sampling, as its vLLM backend)", stacklevel=3)


def _bucket(n: int, step: int) -> int:
    """n rounded up to a multiple of step."""
    return -(-n // step) * step


def _stop_ids(tokenizer, model) -> list[int]:
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    end_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_turn, int) and end_turn != tokenizer.unk_token_id:
        ids.add(end_turn)
    return sorted(ids)


class GumbelSampler(LogitsProcessor):
    """Temperature sampling with one random stream per row, run inside greedy decoding: argmax(logits / T + Gumbel
    noise) is an exact sample from softmax(logits / T) (the Gumbel-max trick). HF's own sampling draws from one
    global RNG for the whole batch, which makes a row's sample depend on its batch-mates; here it cannot."""

    def __init__(self, temperature: float, seeds: list[int], device):
        self.temperature = temperature
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def keep(self, rows: list[int]) -> None:
        """Only these rows (indices into the current ones) are still decoding."""
        self.generators = [self.generators[k] for k in rows]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        noise = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                             for g in self.generators])
        gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
        return scores.float() / self.temperature + gumbel
