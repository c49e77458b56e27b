"""The generation backend Protocol and what crosses it. Backends: hf_backend.HFBackend (transformers generate, CPU
or GPU) and vllm_backend.VLLMBackend (optional extra); eval.open.open_backend picks one for a model under test.
This module imports no torch: strategies, probes and the config can use its types cheaply."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


# The HF backend's arithmetic, versioned: results computed by another version are not reused from the results
# store (it is part of the key). Bump it when the HF backend's numbers change: attention kernel, batch layout, dtype.
HF_NUMERICS = "hf5"  # 3: loglik in one pass (tree mask), chat prefix cached in generation, GQA eager on CPU;
# 4: a stopped row leaves its generation batch (the remaining rows run in a smaller batch); 5: generation caches the
# suite's shared prompt text too. Static slot decoding (eval/slots.py) adds "+static" (and "+compiled").
REFILL_BATCHES = 4  # slot decoding: rows per request chunk, in batches — the queue that refills the slots


@dataclass
class Generation:
    text: str
    n_tokens: int
    finish: str  # "stop" (end-of-turn token) or "length" (hit max_new_tokens)
    latency_s: float  # wall time of its batch divided by the batch size
    cached: bool = False  # answered from the results store, not computed in this run


class Backend(Protocol):
    def chat(self, prompt: str | list[dict]) -> str: ...

    # shared_prefix: text every prompt's user message starts with (a suite's, data.build.shared_prefix), which a
    # backend may compute once as a cache; a hint only — the replies are those of the whole prompts
    def generate(self, prompts: list, max_new_tokens: int, stop: list[str] | None = None,
                 shared_prefix: str = "") -> list[Generation]: ...

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float, seed: int,
               stop: list[str] | None = None, shared_prefix: str = "") -> list[list[Generation]]: ...

    def loglik(self, prompts: list[str], choices: list[list[str]], shared_prefix: str = "") -> list[list[float]]: ...

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        """Greedy continuation of raw text (no chat template): a chat already rendered plus the start of the
        assistant's reply, as the faithfulness probes need."""
        ...


def render_chat(tokenizer, prompt: str | list[dict], system_prompt: str | None, enable_thinking: bool | None) -> str:
    """The exact text the model sees: chat template applied, generation prompt appended. A prompt is a user
    message or a whole conversation (few-shot turns, a reflection follow-up). `enable_thinking` reaches templates
    that read it (Qwen3); None leaves the template's default."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages += [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)


def row_seed(seed: int, text: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}|{index}|{text}".encode()).hexdigest()
    return int(digest[:15], 16)
