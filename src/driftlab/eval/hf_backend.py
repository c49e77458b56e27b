"""The HF backend: batched greedy decoding, per-row seeded sampling and log-likelihood scoring with a transformers
causal LM (the default; CPU or GPU)."""

from __future__ import annotations

import time

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from driftlab.eval.backend import Generation, row_seed, render_chat


class HFBackend:
    """Batched greedy decoding and log-likelihood scoring with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 32, system_prompt: str | None = None,
                 enable_thinking: bool | None = None, on_progress=None):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)
        self.device = next(model.parameters()).device

    def chat(self, prompt: str | list[dict]) -> str:
        return render_chat(self.tok, prompt, self.system_prompt, self.enable_thinking)

    def generate(self, prompts: list, max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        encoded = [self.tok(self.chat(p), add_special_tokens=False).input_ids for p in prompts]
        return self._decode_rows(encoded, max_new_tokens, stop or [], sampler=None)

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        encoded = [self.tok(t, add_special_tokens=False).input_ids for t in texts]
        return self._decode_rows(encoded, max_new_tokens, stop or [], sampler=None)

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float, seed: int,
               stop: list[str] | None = None) -> list[list[Generation]]:
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
        flat = self._decode_rows(rows, max_new_tokens, stop or [], sampler=(temperature, seeds))
        return [flat[i * n : (i + 1) * n] for i in range(len(prompts))]

    @torch.inference_mode()
    def _decode_rows(self, encoded: list[list[int]], max_new_tokens: int, stop: list[str],
                     sampler: tuple[float, list[int]] | None) -> list[Generation]:
        """Decode every row, `batch_size` rows at a time, longest prompts first (similar lengths share a batch:
        less padding, and memory peaks early). Greedy, or sampling when `sampler` = (temperature, row seeds).
        A row stops at an end-of-turn token or at one of the `stop` strings (each row on its own); HF generate keeps
        stopped rows in the batch until its last row stops — the vLLM backend does not."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(encoded)
        eos = _stop_ids(self.tok, self.model)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self._left_pad([encoded[i] for i in idx])
            extra = {}
            if sampler is not None:
                extra["logits_processor"] = LogitsProcessorList(
                    [GumbelSampler(sampler[0], [sampler[1][i] for i in idx], self.device)])
            if stop:
                extra.update(stop_strings=stop, tokenizer=self.tok)
            t0 = time.perf_counter()
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                                      pad_token_id=self.tok.pad_token_id, top_p=None, top_k=None, temperature=None,
                                      **extra)
            dt = (time.perf_counter() - t0) / len(idx)
            new = out[:, batch["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), idx):
                results[i] = self._decode(row, eos, dt, stop)
            self.on_progress(len(idx))
        return results  # type: ignore[return-value]

    def _decode(self, row: list[int], eos: list[int], latency: float, stop: list[str] = ()) -> Generation:
        n = next((k for k, t in enumerate(row) if t in eos or t == self.tok.pad_token_id), None)  # HF pads a
        tokens = row if n is None else row[:n]  # row after it stops (a stop string ends it without an eos token)
        text = self.tok.decode(tokens, skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        if cut >= 0:  # a stop string ended the row: the reply is what came before it (as in OpenAI/vLLM APIs)
            return Generation(text[:cut], len(tokens), "stop", latency)
        return Generation(text, len(tokens), "length" if n is None else "stop", latency)

    @torch.inference_mode()
    def loglik(self, prompts: list[str], choices: list[list[str]]) -> list[list[float]]:
        """Sum of log p(choice tokens | chat prompt) for every choice of every prompt (lm-eval's 'acc'), scored
        `batch_size` prompts at a time. Context and choices are encoded separately, as lm-eval does, so a choice's
        tokens are exactly its own whatever the context ends with.

        A prompt's scores do not depend on which prompts share its batch (the results store computes only the
        missing items, so batches differ between runs): rows do not mix, and the padded shape a prompt is scored in
        is a function of the prompt alone. Prompts are grouped by that shape; widths are rounded up to buckets, so
        prompts of similar lengths share a group. Without that, float32 attention on the CPU rounds differently
        for other sequence lengths (tests/unit/test_backend.py)."""
        ctxs = [self.tok(self.chat(p), add_special_tokens=False).input_ids for p in prompts]
        conts = [[self.tok(c, add_special_tokens=False).input_ids for c in opts] for opts in choices]
        prefix = self._chat_prefix()  # shared by every prompt: run once per batch, as a cache
        split = [len(prefix) if len(c) > len(prefix) and c[: len(prefix)] == prefix else 0 for c in ctxs]
        groups: dict[tuple, list[int]] = {}
        for i in range(len(prompts)):
            shape = (bool(split[i]), _bucket(len(ctxs[i]) - split[i], BUCKET), max(map(len, conts[i])) - 1)
            groups.setdefault(shape, []).append(i)
        out: list[list[float] | None] = [None] * len(prompts)
        for (shared, width, tail_width), idx in sorted(groups.items()):
            for start in range(0, len(idx), self.batch_size):
                batch = idx[start : start + self.batch_size]
                scores = self._score_batch(prefix if shared else [], [ctxs[i][split[i]:] for i in batch],
                                           [conts[i] for i in batch], width, tail_width)
                for i, s in zip(batch, scores):
                    out[i] = s
                self.on_progress(len(batch))
        return out  # type: ignore[return-value]

    def _chat_prefix(self) -> list[int]:
        """Token ids of the chat text before the user's message (the same for every prompt)."""
        marker = "\x00driftlab\x00"
        text = self.chat(marker)
        return self.tok(text[: text.index(marker)], add_special_tokens=False).input_ids if marker in text else []

    def _score_batch(self, prefix: list[int], rests: list[list[int]], conts: list[list[list[int]]], width: int,
                     tail_width: int) -> list[list[float]]:
        """Three forward passes for a batch: the shared prefix once, every prompt's own context tokens (right-padded
        to `width`, on the prefix's cache), then every choice's tokens after the first (right-padded to
        `tail_width`, on its prompt's cache; the context's pad columns keep that mask from being all ones).
        Token 0 of a choice is predicted by its context's last position, token t by choice position t-1. Prefix
        sharing: the context runs once per prompt, not once per choice (benchmarks/NOTES.md)."""
        dev, pad, n = self.device, self.tok.pad_token_id, len(rests)
        cache, p = None, len(prefix)
        if prefix:
            cache = self.model(input_ids=torch.tensor([prefix], device=dev), use_cache=True).past_key_values
            cache.batch_repeat_interleave(n)
        ids, mask = torch.full((n, width), pad), torch.zeros((n, p + width), dtype=torch.long)
        mask[:, :p] = 1
        for r, rest in enumerate(rests):
            ids[r, : len(rest)] = torch.tensor(rest)
            mask[r, p : p + len(rest)] = 1
        pos = torch.arange(p, p + width).expand(n, -1)
        # The LM head runs only on the bucket's last positions, where every prompt's last token lies (a range fixed
        # by the bucket, not by the batch: the head's matrix has the same shape whichever prompts share the batch).
        first = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                           past_key_values=cache, use_cache=True, logits_to_keep=(keep := min(BUCKET + 1, width)))
        last = torch.tensor([len(r) - 1 - (width - keep) for r in rests], device=dev)
        next_logp = first.logits[torch.arange(n, device=dev), last].float().log_softmax(-1)
        scores = [[next_logp[r, c[0]].item() for c in cs] for r, cs in enumerate(conts)]
        tails = [(r, j, c) for r, cs in enumerate(conts) for j, c in enumerate(cs) if len(c) > 1]
        if not tails:  # every choice is one token: done
            return scores
        owners = [r for r, _, _ in tails]  # each tail's prompt: its cache and mask rows, repeated per choice
        cache = first.past_key_values
        cache.batch_select_indices(torch.tensor(owners, device=dev))
        t_ids = torch.full((len(tails), tail_width), pad)
        t_mask = torch.cat([mask[owners], torch.zeros((len(tails), tail_width), dtype=torch.long)], 1)
        t_pos = torch.zeros((len(tails), tail_width), dtype=torch.long)
        for k, (r, _, c) in enumerate(tails):
            t_ids[k, : len(c) - 1] = torch.tensor(c[:-1])  # the last token is only predicted, never fed
            t_mask[k, p + width : p + width + len(c) - 1] = 1
            t_pos[k] = p + len(rests[r]) + torch.arange(tail_width)
        logp = self.model(input_ids=t_ids.to(dev), attention_mask=t_mask.to(dev), position_ids=t_pos.to(dev),
                          past_key_values=cache, use_cache=True).logits.float().log_softmax(-1)
        for k, (r, j, c) in enumerate(tails):
            steps = torch.arange(len(c) - 1, device=dev)
            scores[r][j] += logp[k, steps, torch.tensor(c[1:], device=dev)].sum().item()
        return scores

    def _left_pad(self, seqs: list[list[int]]) -> dict:
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s)
            mask[r, width - len(s) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}


BUCKET = 4  # prompts' own lengths are rounded up to a multiple of this: padding vs. the number of shapes


def _bucket(n: int, step: int) -> int:
    """n rounded up to a multiple of step, always above n: every row has a pad column, so the attention mask is
    never all ones (transformers would then drop it and take a causal kernel that rounds differently)."""
    return (n // step + 1) * step


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

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        noise = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                             for g in self.generators])
        gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
        return scores.float() / self.temperature + gumbel
