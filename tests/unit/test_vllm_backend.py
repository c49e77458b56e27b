"""The vLLM backend's glue, against a stand-in `vllm` module (vLLM itself needs CUDA): what it asks vLLM for and
how it turns the answers into Generations and log-likelihoods."""

import sys
import types
from dataclasses import dataclass, field

import pytest

from driftlab.errors import DriftlabError


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list | None = None
    seed: int | None = None
    prompt_logprobs: int | None = None


@dataclass
class TokensPrompt:
    prompt_token_ids: list


@dataclass
class Logprob:
    logprob: float


@dataclass
class FakeLLM:
    model: str
    dtype: str = "auto"
    seed: int = 0
    enable_lora: bool = False
    calls: list = field(default_factory=list)

    def get_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model)

    def generate(self, prompts, params, lora_request=None, use_tqdm=True):
        params = params if isinstance(params, list) else [params] * len(prompts)
        self.calls.append((prompts, params, lora_request))
        outs = []
        for p, sp in zip(prompts, params):
            if sp.prompt_logprobs is not None:  # log-prob of token at position i := -i (first position has none)
                lps = [None] + [{t: Logprob(-float(i))} for i, t in enumerate(p.prompt_token_ids) if i > 0]
                outs.append(types.SimpleNamespace(prompt_logprobs=lps, outputs=[]))
            else:
                comps = [types.SimpleNamespace(text=f"{sp.seed}:{j}", token_ids=[1, 2, 3],
                                               finish_reason="length" if sp.max_tokens == 3 else "stop")
                         for j in range(sp.n)]
                outs.append(types.SimpleNamespace(outputs=comps))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.TokensPrompt = FakeLLM, SamplingParams, TokensPrompt
    lora = types.ModuleType("vllm.lora.request")
    lora.LoRARequest = lambda name, idx, path: ("lora", name, idx, path)
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.ModuleType("vllm.lora"))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    return mod


def test_missing_vllm_is_one_clear_error(monkeypatch):
    from driftlab.eval.vllm_backend import VLLMBackend

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as if not installed
    with pytest.raises(DriftlabError, match=r"pip install 'driftlab\[vllm\]'"):
        VLLMBackend("any")


def test_greedy_stop_and_finish(fake_vllm, tiny_model_dir):
    from driftlab.eval.vllm_backend import VLLMBackend

    b = VLLMBackend(str(tiny_model_dir))
    out = b.generate(["What is 3 + 4?", "Name a colour."], 3, stop=["\n"])
    prompts, params, lora = b.llm.calls[-1]
    expected = b.tok(b.chat("What is 3 + 4?"), add_special_tokens=False).input_ids  # no second BOS from vLLM
    assert prompts[0].prompt_token_ids == expected and params[0].temperature == 0.0 and params[0].stop == ["\n"]
    assert lora is None and [g.finish for g in out] == ["length", "length"] and out[0].n_tokens == 3


def test_samples_are_seeded_per_prompt(fake_vllm, tiny_model_dir):
    from driftlab.eval.vllm_backend import VLLMBackend

    b = VLLMBackend(str(tiny_model_dir))
    alone = b.sample(["What is 3 + 4?"], 8, n=3, temperature=0.7, seed=1)[0]
    together = b.sample(["Name a colour.", "What is 3 + 4?"], 8, n=3, temperature=0.7, seed=1)[1]
    assert [g.text for g in alone] == [g.text for g in together] and len(alone) == 3
    assert b.sample(["What is 3 + 4?"], 8, n=3, temperature=0.7, seed=2)[0][0].text != alone[0].text


def test_loglik_sums_the_continuation_positions(fake_vllm, tiny_model_dir):
    from driftlab.eval.vllm_backend import VLLMBackend

    b = VLLMBackend(str(tiny_model_dir))
    scores = b.loglik(["Capital of France?"], [["Paris", "Rome"]])
    ctx = len(b.tok(b.chat("Capital of France?"), add_special_tokens=False).input_ids)
    for choice, score in zip(["Paris", "Rome"], scores[0]):
        n = len(b.tok(choice, add_special_tokens=False).input_ids)
        assert score == -sum(range(ctx, ctx + n))  # exactly the choice's positions, none of the context's


def test_adapter_must_be_peft_lora(fake_vllm, tiny_model_dir, tmp_path):
    from driftlab.eval.vllm_backend import VLLMBackend

    with pytest.raises(DriftlabError, match="PEFT LoRA adapters only"):
        VLLMBackend(str(tiny_model_dir), artifact=tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    b = VLLMBackend(str(tiny_model_dir), artifact=tmp_path)
    b.generate(["hi"], 4)
    assert b.llm.enable_lora and b.llm.calls[-1][2] == ("lora", "adapter", 1, str(tmp_path))
