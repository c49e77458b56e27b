"""Open a model under test for inference: the one place that turns a ModelUnderTest into a backend (HF or vLLM)
behind the results store. Eval, probes and self-replay all call `open_backend`; nothing else opens or wraps one.

The HF backend opens lazily: rendering chat text (what the results store keys on) needs only the tokenizer, so an
eval or probe answered entirely from the store never loads weights, merges an adapter or decomposes an SVF expert.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from driftlab.config import EvalConfig
from driftlab.errors import ConfigError
from driftlab.eval.backend import HF_NUMERICS, REFILL_BATCHES, Backend, render_chat
from driftlab.eval.store import CachedBackend, results_store
from driftlab.models import ModelUnderTest, fingerprint_dir, inference_dtype, pick_device


@contextmanager
def open_backend(model: ModelUnderTest, eval_cfg: EvalConfig, on_progress=None,
                 log=lambda message: None) -> Iterator[CachedBackend]:
    """The model's backend behind the results store `eval_cfg` names (or straight through with `eval.cache:
    false`), closed on exit. `on_progress(n)` advances a bar by n generated rows (cached rows included); `log`
    gets the store's "N cached, M to compute" lines. The handle's `.fingerprint` keys the store, `.store` is the
    store or None, and the backend's own attributes (`model`, `tok`) load the model on first use."""
    # resolved once: the store's key, the backend and the chunking must agree on it
    decoding = hf_decoding(model, eval_cfg) if eval_cfg.backend == "hf" else ("dynamic", False)
    fingerprint = result_fingerprint(model, eval_cfg, decoding)
    refill = REFILL_BATCHES if decoding[0] == "static" else 1
    with results_store(eval_cfg) as store:
        yield CachedBackend(_backend(model, eval_cfg, on_progress, decoding), store, fingerprint, eval_cfg.batch_size,
                            log=log, refill_batches=refill)


def result_fingerprint(model: ModelUnderTest, eval_cfg: EvalConfig, decoding: tuple[str, bool] | None = None) -> str:
    """Base weights + artifact weights (a retrained adapter never reuses a stale result), the artifact's scale,
    and what changes the numbers: backend and its numerics version (with the HF decoding, `decoding`: as
    open_backend resolved it), dtype, device."""
    fp = (model.base.fingerprint + (":" + fingerprint_dir(model.artifact) if model.artifact else "")
          + (f"@{model.scale!r}" if model.scale != 1 else ""))
    if eval_cfg.backend == "vllm":
        return fp + f"|vllm|{model.config.dtype}"
    device = pick_device(model.config.device)
    decoding, compiled = decoding or hf_decoding(model, eval_cfg)
    numerics = HF_NUMERICS + ("+static" if decoding == "static" else "") + ("+compiled" if compiled else "")
    return fp + f"|{inference_dtype(model.config.dtype, device)}|{device}|{numerics}"


def hf_decoding(model: ModelUnderTest, eval_cfg: EvalConfig) -> tuple[str, bool]:
    """(decoding, compiled) of the HF backend: `eval.decoding` and `eval.compile` with 'auto' resolved — static
    slots, compiled, on a GPU where the model's KV cache allows it (eval/slots.py); dynamic batches on the CPU."""
    device = pick_device(model.config.device)
    decoding = eval_cfg.decoding
    if decoding == "auto":
        decoding = "static" if device == "cuda" and _static_cache_supported(model) else "dynamic"
    elif decoding == "static" and not _static_cache_supported(model):
        raise ConfigError("config key 'eval.decoding' is 'static' but this model's KV cache has layers the slot "
                          "decoder cannot lay out (sliding-window or other non-plain layers); use 'dynamic'")
    compiled = eval_cfg.compile == "on" or (eval_cfg.compile == "auto" and decoding == "static" and device == "cuda")
    if compiled and decoding != "static":
        raise ConfigError("config key 'eval.compile' is 'on' but only the static decoding step is compiled: set "
                          "eval.decoding to 'static' as well")
    return decoding, compiled


def _static_cache_supported(model: ModelUnderTest) -> bool:
    from transformers import AutoConfig

    from driftlab.eval.slots import static_cache_supported

    try:
        config = AutoConfig.from_pretrained(model.base.path)
    except (OSError, ValueError):  # no readable config: the loaded model will tell; stay on the dynamic path
        return False
    return static_cache_supported(config)


def _backend(model: ModelUnderTest, eval_cfg: EvalConfig, on_progress, decoding: tuple[str, bool]) -> Backend:
    cfg = model.config
    if eval_cfg.backend == "vllm":
        if model.scale != 1.0:
            raise ConfigError("eval.backend=vllm cannot evaluate a fine-tune at a scale other than 1 (the sweep); "
                              "use the hf backend for it")
        from driftlab.eval.vllm_backend import VLLMBackend

        return VLLMBackend(model.base.path, cfg.dtype, model.artifact, cfg.system_prompt, cfg.enable_thinking,
                           on_progress=on_progress)

    def load():
        from driftlab.eval.hf_backend import HFBackend

        lm, tok = model.load()
        return HFBackend(lm, tok, eval_cfg.batch_size, cfg.system_prompt, cfg.enable_thinking, on_progress=on_progress,
                         decoding=decoding[0], compiled=decoding[1])

    return LazyBackend(load, model.tokenizer, cfg.system_prompt, cfg.enable_thinking, on_progress)


class LazyBackend:
    """The HF backend, loaded on first use (see module doc)."""

    def __init__(self, load, load_tokenizer, system_prompt: str | None, enable_thinking: bool | None,
                 on_progress=None):
        self._load, self._load_tokenizer, self._backend, self._tok = load, load_tokenizer, None, None
        self.system_prompt, self.enable_thinking = system_prompt, enable_thinking
        self.on_progress = on_progress or (lambda n: None)  # the results store advances the bar for cached rows

    @property
    def loaded(self):
        if self._backend is None:
            self._backend = self._load()
        return self._backend

    def chat(self, prompt) -> str:
        if self._backend is not None:
            return self._backend.chat(prompt)
        if self._tok is None:
            self._tok = self._load_tokenizer()
        return render_chat(self._tok, prompt, self.system_prompt, self.enable_thinking)

    def __getattr__(self, name: str):  # generate, sample, complete, loglik, model, tok: load, then delegate
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.loaded, name)
