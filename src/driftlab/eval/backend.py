"""Generation backends behind one small Protocol: the HF `generate` backend here; vLLM can slot in beside it."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass
class Generation:
    text: str
    n_tokens: int
    finish: str  # "stop" (end-of-turn token) or "length" (hit max_new_tokens)
    latency_s: float  # wall time of its batch divided by the batch size
    cached: bool = False  # answered from the results store, not computed in this run


class Backend(Protocol):
    def chat(self, prompt: str | list[dict]) -> str: ...

    def generate(self, prompts: list, max_new_tokens: int) -> list[Generation]: ...

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float,
               seed: int) -> list[list[Generation]]: ...

    def loglik(self, prompts: list[str], choices: list[list[str]]) -> list[list[float]]: ...


class HFBackend:
    """Batched greedy decoding and log-likelihood scoring with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 32, system_prompt: str | None = None,
                 enable_thinking: bool | None = None, on_progress=None):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)
        self.device = next(model.parameters()).device

    def chat(self, prompt: str | list[dict]) -> str:
        """The exact text the model sees: chat template applied, generation prompt appended. A prompt is a user
        message or a whole conversation (few-shot turns, a reflection follow-up)."""
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        messages += [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        extra = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)

    @torch.inference_mode()
    def generate(self, prompts: list[str], max_new_tokens: int) -> list[Generation]:
        encoded = [self.tok(self.chat(p), add_special_tokens=False).input_ids for p in prompts]
        # Longest first: similar lengths share a batch (less padding), and memory peaks early, not at the end.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(prompts)
        eos = _stop_ids(self.tok, self.model)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = self._left_pad([encoded[i] for i in idx])
            t0 = time.perf_counter()
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                                      pad_token_id=self.tok.pad_token_id, top_p=None, top_k=None, temperature=None)
            dt = (time.perf_counter() - t0) / len(idx)
            new = out[:, batch["input_ids"].shape[1] :]
            for row, i in zip(new.tolist(), idx):
                results[i] = self._decode(row, eos, dt)
            self.on_progress(len(idx))
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float,
               seed: int) -> list[list[Generation]]:
        """n sampled replies per prompt. Each prompt is sampled alone with its own seed (derived from `seed` and the
        prompt text), so its samples do not depend on which other prompts share the run."""
        eos = _stop_ids(self.tok, self.model)
        out = []
        for prompt in prompts:
            text = self.chat(prompt)
            ids = self.tok(text, add_special_tokens=False).input_ids
            torch.manual_seed(seed * 1_000_003 + int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
            batch = self._left_pad([ids] * n)
            t0 = time.perf_counter()
            gen = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True,
                                      temperature=temperature, top_p=1.0, top_k=0, eos_token_id=eos,
                                      pad_token_id=self.tok.pad_token_id)
            dt = (time.perf_counter() - t0) / n
            out.append([self._decode(row, eos, dt) for row in gen[:, len(ids) :].tolist()])
            self.on_progress(1)
        return out

    def _decode(self, row: list[int], eos: list[int], latency: float) -> Generation:
        n = next((k for k, t in enumerate(row) if t in eos), None)
        tokens = row if n is None else row[:n]
        return Generation(self.tok.decode(tokens, skip_special_tokens=True), len(tokens),
                          "length" if n is None else "stop", latency)

    @torch.inference_mode()
    def loglik(self, prompts: list[str], choices: list[list[str]]) -> list[list[float]]:
        """Sum of log p(choice tokens | chat prompt) for every choice of every prompt (lm-eval's 'acc')."""
        out = []
        for prompt, opts in zip(prompts, choices):
            ctx = self.tok(self.chat(prompt), add_special_tokens=False).input_ids
            # Context and continuation are encoded separately, as lm-eval does, so the continuation's tokens are
            # exactly the choice's tokens whatever the context ends with.
            conts = [self.tok(c, add_special_tokens=False).input_ids for c in opts]
            out.append(self._score_continuations(ctx, conts))
            self.on_progress(1)
        return out

    def _score_continuations(self, ctx: list[int], conts: list[list[int]]) -> list[float]:
        # Prefix sharing: the context runs once and its KV cache is repeated for every choice, instead of running
        # context+choice k times (measured ~6x faster per item on the 14-choice family_relations suite on CPU:
        # 1.76 s -> 0.30 s).
        first = self.model(input_ids=torch.tensor([ctx], device=self.device), use_cache=True, logits_to_keep=1)
        next_logp = first.logits[0, -1].float().log_softmax(-1)
        cache = first.past_key_values
        cache.batch_repeat_interleave(len(conts))
        width = max(map(len, conts))
        ids = torch.full((len(conts), width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(conts), len(ctx) + width), dtype=torch.long)
        mask[:, : len(ctx)] = 1
        for r, c in enumerate(conts):
            ids[r, : len(c)] = torch.tensor(c)
            mask[r, len(ctx) : len(ctx) + len(c)] = 1  # right padding: pads sit after the real tokens
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            past_key_values=cache, use_cache=True).logits
        scores = []
        for r, c in enumerate(conts):
            # Token 0 is predicted by the context's last position, token i by continuation position i-1.
            score = next_logp[c[0]].item()
            if len(c) > 1:
                lp = logits[r, : len(c) - 1].float().log_softmax(-1)
                score += lp[torch.arange(len(c) - 1, device=self.device), torch.tensor(c[1:], device=self.device)].sum().item()
            scores.append(score)
        return scores

    def _left_pad(self, seqs: list[list[int]]) -> dict:
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s)
            mask[r, width - len(s) :] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}


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
