"""Generation backends behind one small Protocol: the HF `generate` backend here; vLLM can slot in beside it."""

from __future__ import annotations

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


class Backend(Protocol):
    def generate(self, prompts: list[str], max_new_tokens: int) -> list[Generation]: ...

    def loglik(self, prompts: list[str], choices: list[list[str]]) -> list[list[float]]: ...


class HFBackend:
    """Batched greedy decoding and log-likelihood scoring with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 32, system_prompt: str | None = None,
                 enable_thinking: bool | None = None, on_progress=None):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)
        self.device = next(model.parameters()).device

    def chat(self, prompt: str) -> str:
        """The exact text the model sees: chat template applied, generation prompt appended."""
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        messages.append({"role": "user", "content": prompt})
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
                n = next((k for k, t in enumerate(row) if t in eos), None)
                tokens = row if n is None else row[:n]
                results[i] = Generation(self.tok.decode(tokens, skip_special_tokens=True), len(tokens),
                                        "length" if n is None else "stop", dt)
            self.on_progress(len(idx))
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def loglik(self, prompts: list[str], choices: list[list[str]]) -> list[list[float]]:
        """Sum of log p(choice tokens | chat prompt) for every choice of every prompt (lm-eval's 'acc')."""
        pairs = []
        for p, opts in zip(prompts, choices):
            ctx = self.tok(self.chat(p), add_special_tokens=False).input_ids
            for c in opts:
                # Context and continuation are encoded separately, as lm-eval does, so the continuation's tokens
                # are exactly the choice's tokens whatever the context ends with.
                pairs.append((ctx, self.tok(c, add_special_tokens=False).input_ids))
        scores = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            seqs = [ctx + cont for ctx, cont in chunk]
            width = max(map(len, seqs))
            ids = torch.full((len(seqs), width), self.tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, s in enumerate(seqs):
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for r, (ctx, cont) in enumerate(chunk):
                # Position t predicts token t+1: the continuation is scored by the logits just before it.
                logprobs = logits[r, len(ctx) - 1 : len(ctx) + len(cont) - 1].float().log_softmax(-1)
                targets = torch.tensor(cont, device=self.device)
                scores.append(logprobs[torch.arange(len(cont), device=self.device), targets].sum().item())
        self.on_progress(len(prompts))
        out, k = [], 0
        for opts in choices:
            out.append(scores[k : k + len(opts)])
            k += len(opts)
        return out

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
