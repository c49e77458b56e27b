"""The vLLM backend (optional extra `driftlab[vllm]`, needs a CUDA GPU): the same four calls as HFBackend, with
vLLM's continuous batching, so a finished sequence frees its slot at once instead of idling until its batch ends.

Greedy replies, per-prompt-seeded samples (vLLM seeds each request on its own, so samples do not depend on batch
composition), stop strings, and log-likelihood scoring from `prompt_logprobs` (the way lm-eval's vLLM model does
it). A PEFT LoRA adapter is applied per request with a LoRARequest.
"""

from __future__ import annotations

import time
from pathlib import Path

from driftlab.artifacts import artifact_kind
from driftlab.errors import DriftlabError
from driftlab.eval.backend import Generation, render_chat, row_seed


def _import_vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise DriftlabError("eval.backend=vllm needs vLLM: pip install 'driftlab[vllm]' (a CUDA GPU is required); "
                            "or use eval.backend=hf") from None
    return vllm, LoRARequest


class VLLMBackend:
    def __init__(self, model_path: str, dtype: str = "auto", artifact: Path | None = None,
                 system_prompt: str | None = None, enable_thinking: bool | None = None, seed: int = 0,
                 on_progress=None, **engine_kwargs):
        self.vllm, lora_request = _import_vllm()
        if artifact is not None and artifact_kind(artifact) != "adapter":
            raise DriftlabError(f"{artifact}: the vLLM backend applies PEFT LoRA adapters only (no adapter_config.json "
                                "here); export a merged checkpoint and evaluate that as the model")
        self.llm = self.vllm.LLM(model=model_path, dtype=dtype, seed=seed, enable_lora=artifact is not None,
                                 **engine_kwargs)
        self.tok = self.llm.get_tokenizer()
        self.lora = lora_request("adapter", 1, str(artifact)) if artifact is not None else None
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)

    def chat(self, prompt: str | list[dict]) -> str:
        return render_chat(self.tok, prompt, self.system_prompt, self.enable_thinking)

    # shared_prefix: a hint for the HF backend's cache; vLLM finds shared prefixes itself (prefix caching)
    def generate(self, prompts: list, max_new_tokens: int, stop: list[str] | None = None,
                 shared_prefix: str = "") -> list[Generation]:
        params = self.vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None)
        return [gens[0] for gens in self._run([self.chat(p) for p in prompts], [params] * len(prompts))]

    def complete(self, texts: list[str], max_new_tokens: int, stop: list[str] | None = None) -> list[Generation]:
        params = self.vllm.SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=stop or None)
        return [gens[0] for gens in self._run(list(texts), [params] * len(texts))]

    def sample(self, prompts: list, max_new_tokens: int, n: int, temperature: float, seed: int,
               stop: list[str] | None = None, shared_prefix: str = "") -> list[list[Generation]]:
        texts = [self.chat(p) for p in prompts]
        params = [self.vllm.SamplingParams(n=n, temperature=temperature, top_p=1.0, top_k=-1, max_tokens=max_new_tokens,
                                           stop=stop or None, seed=row_seed(seed, t, 0) % 2**31) for t in texts]
        return self._run(texts, params)

    def loglik(self, prompts: list[str], choices: list[list[str]], shared_prefix: str = "") -> list[list[float]]:
        # shared_prefix is a hint for the HF backend's cache; vLLM finds shared prefixes itself (prefix caching)
        requests, spans = [], []
        for prompt, opts in zip(prompts, choices):
            ctx = self.tok(self.chat(prompt), add_special_tokens=False).input_ids
            for c in opts:
                cont = self.tok(c, add_special_tokens=False).input_ids
                requests.append(self.vllm.TokensPrompt(prompt_token_ids=ctx + cont))
                spans.append((len(ctx), ctx + cont))
        params = self.vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=1)
        outs = self.llm.generate(requests, params, lora_request=self.lora, use_tqdm=False)
        flat = [sum(out.prompt_logprobs[pos][ids[pos]].logprob for pos in range(start, len(ids)))
                for out, (start, ids) in zip(outs, spans)]
        self.on_progress(len(prompts))
        scores, k = [], 0
        for opts in choices:
            scores.append(flat[k : k + len(opts)])
            k += len(opts)
        return scores

    def _run(self, texts: list[str], params: list) -> list[list[Generation]]:
        # Token ids, not text: vLLM would add special tokens (a second BOS after the chat template's) to text;
        # the HF backend encodes with add_special_tokens=False, and both must score the same input.
        prompts = [self.vllm.TokensPrompt(prompt_token_ids=self.tok(t, add_special_tokens=False).input_ids)
                   for t in texts]
        t0 = time.perf_counter()
        outs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
        per_item = (time.perf_counter() - t0) / max(1, sum(len(o.outputs) for o in outs))
        self.on_progress(sum(len(o.outputs) for o in outs))
        return [[Generation(c.text, len(c.token_ids), "length" if c.finish_reason == "length" else "stop", per_item)
                 for c in o.outputs] for o in outs]
