"""Shared fixtures: a tiny random Qwen3 model with a tiny BPE tokenizer, built offline in seconds."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)


def logits_of(model, ids):
    """The model's logits for token ids, computed on the model's device and returned in float32 on the CPU: a test
    passes on a CUDA machine, where load_model puts the model on the GPU, as on the CPU."""
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(ids).to(model.device)).logits.float().cpu()


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["What is 12 + 34? Answer: 46", "Calculate 57 - 19. Reply with only the final line 'Answer: <number>'.",
              "What is the capital of France? Paris Berlin Rome Madrid", "user assistant system", "0123456789"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = fast.eos_token_id
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def private_train_cache(tmp_path, monkeypatch):
    """Each test gets its own train cache, so no test reuses another's fine-tune (tests that want a hit train
    twice within one test)."""
    monkeypatch.setattr("driftlab.train.cache.driftlab_home", lambda: tmp_path / "driftlab-home")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"))


@pytest.fixture
def jsonl_file(tmp_path):
    def write(rows: list, name: str = "items.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        return path

    return write


ARITH = {
    "name": "arithmetic", "source": "reasoning_gym", "task": "basic_arithmetic",
    "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2, "operators": ["+", "-"]},
    "template": "{question}\nReply with only the final line 'Answer: <number>'.",
    "completion_template": "Answer: {answer}", "scorer": "numeric",
}


def tiny_study_config(tmp_path: Path, model_dir: Path, **over) -> dict:
    cfg = {
        "name": "tiny", "seed": 0, "runs_dir": str(tmp_path / "runs"),
        "model": {"name_or_path": str(model_dir)},
        "data": {
            "target": {**ARITH, "size": 12, "train_size": 32},
            "heldout": [
                {"name": "capitals", "source": "jsonl", "path": "capitals.jsonl", "mode": "loglik", "size": 10},
                {"name": "copy_word", "source": "jsonl", "path": "copy_word.jsonl", "scorer": "exact", "size": 8},
            ],
        },
        "train": {"batch_size": 8, "max_steps": 6, "save_steps": 3, "learning_rate": 5e-3},
        "eval": {"batch_size": 8, "max_new_tokens": 6, "store_path": str(tmp_path / "results.sqlite")},
        "compare": {"n_bootstrap": 500},
    }
    cfg.update(over)
    return cfg


class Killed(Exception):
    """A training run stopped mid-way, as a kill would stop it (raised by `dies_at_step`)."""


@contextmanager
def dies_at_step(monkeypatch, step: int):
    """Within the block, training raises Killed right after logging `step` (the run dir keeps what was written);
    the log callback is itself again afterwards."""
    from driftlab.train import callbacks

    original = callbacks.JsonlLogCallback.on_log

    def dies(self, args, state, control, logs=None, **kw):
        original(self, args, state, control, logs=logs, **kw)
        if state.global_step == step:
            raise Killed

    monkeypatch.setattr(callbacks.JsonlLogCallback, "on_log", dies)
    try:
        with pytest.raises(Killed):
            yield
    finally:
        monkeypatch.setattr(callbacks.JsonlLogCallback, "on_log", original)
