"""GPU training settings from what fits (train/memory.py), on the CPU: the estimate against the peaks measured on an
H200 (issue 21), and the plan's choices and reasons."""

import pytest

from driftlab.train.memory import GIB, Shape, gpu_plan, peak_bytes

QWEN3_4B = Shape(params=4_022_468_096, hidden=2560, layers=36, intermediate=9728, vocab=151936)
LORA_R16 = 33_030_144  # LoRA r16 on every linear layer of Qwen3-4B
TOKENS = 4 * 1024  # batch 4 × 1,024 tokens


@pytest.mark.parametrize("checkpointing, measured_gib", [(False, 28.71), (True, 9.73), (True, 9.54)])
def test_the_estimate_is_within_20_percent_of_the_measured_peaks(checkpointing, measured_gib):
    """The H200's peaks: no checkpointing, no Liger; checkpointing alone; checkpointing and Liger (whose kernels
    change little of the memory: the estimate does not count them)."""
    estimate = peak_bytes(QWEN3_4B, TOKENS, LORA_R16, checkpointing) / GIB
    assert abs(estimate - measured_gib) <= 0.2 * measured_gib, estimate


def test_checkpointing_only_when_the_step_would_not_fit():
    big = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=139 * GIB, liger_available=True)
    assert not big.gradient_checkpointing and big.liger  # the fast pair measured on the H200
    assert "checkpointing off" in big.reason and "Liger on" in big.reason
    small = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=True)
    assert small.gradient_checkpointing and not small.liger  # Liger slowed checkpointed steps
    assert "over 85% of the 24.0 GiB free" in small.reason
    assert gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=28 * GIB, liger_available=False).gradient_checkpointing
    plain = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=30 * GIB, liger_available=False)  # 24.4 GiB < 85% of 30
    assert not plain.gradient_checkpointing and not plain.liger and "not installed" in plain.reason
    svf_like = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=30 * GIB, liger_available=False, extra=10 * GIB)
    assert svf_like.gradient_checkpointing  # what a method adds counts


def test_the_users_settings_win_and_say_so():
    plan = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=139 * GIB, liger_available=True, checkpointing=True)
    assert plan.gradient_checkpointing and not plan.liger and "train.gradient_checkpointing" in plan.reason
    plan = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=139 * GIB, liger_available=True, liger=False)
    assert not plan.gradient_checkpointing and not plan.liger and "train.liger" in plan.reason


def test_shape_reads_transformers_configs_of_several_families():
    from transformers import GPT2Config, OPTConfig, Qwen3Config, Qwen3MoeConfig

    cfg = Qwen3Config(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=1000)
    assert Shape.from_config(cfg, params=123) == Shape(123, 64, 2, 128, 1000)
    assert Shape.from_config(OPTConfig(), 1).intermediate == OPTConfig().ffn_dim  # its MLP width by another name
    assert Shape.from_config(GPT2Config(), 1) == Shape(1, 768, 12, 4 * 768, 50257)  # none given: 4·hidden
    moe = Qwen3MoeConfig(hidden_size=64, num_hidden_layers=2, moe_intermediate_size=32, num_experts_per_tok=4)
    assert Shape.from_config(moe, 1).intermediate == 128  # the experts a token is routed to


def test_a_gpu_run_takes_the_plan_and_a_cpu_run_does_not(tiny_model_dir, monkeypatch):
    """_machine_choices on 'cuda' without a GPU: the free memory and Liger's presence mocked, the model's shape and
    trainable parameters counted on the meta device."""
    import torch

    from driftlab.config import ModelConfig, TrainConfig
    from driftlab.models import resolve_model
    from driftlab.train import sft

    model, cfg = resolve_model(str(tiny_model_dir)), TrainConfig(batch_size=4, max_length=64, bf16=True)
    monkeypatch.setattr(sft, "_importable", lambda name: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (80 * GIB, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda *a: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 0)
    monkeypatch.setattr("transformers.utils.is_flash_attn_2_available", lambda: True)
    roomy = sft._machine_choices(cfg, "cuda", model, ModelConfig(), [])
    assert roomy["gradient_checkpointing"] is False and roomy["liger"] is True
    assert roomy["padding_free"] is True and roomy["attention"] == "flash_attention_2"  # flash-attn "installed"
    grpo = sft._machine_choices(cfg.model_copy(update={"objective": "grpo"}), "cuda", model, ModelConfig(), [])
    assert grpo["liger"] is False and grpo["padding_free"] is False  # GRPOTrainer takes neither from driftlab
    rows = [{"prompt": "x " * 300, "completion": "y"}]  # longer than max_length 64: padding-free would not cut it
    assert sft._machine_choices(cfg, "cuda", model, ModelConfig(), rows)["padding_free"] is False
    off = sft._machine_choices(cfg.model_copy(update={"padding_free": False}), "cuda", model, ModelConfig(), [])
    assert off["padding_free"] is False and off["attention"] is None
    capped = sft._machine_choices(cfg.model_copy(update={"gpu_memory_gib": 1e-6}), "cuda", model, ModelConfig(), [])
    assert capped["gradient_checkpointing"] is True  # train.gpu_memory_gib reaches the plan: 80 GiB free, ~1 KiB cap
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1024, 80 * GIB))  # nothing fits
    tight = sft._machine_choices(cfg, "cuda", model, ModelConfig(), [])
    assert tight["gradient_checkpointing"] is True and tight["liger"] is False
    cpu = sft._machine_choices(cfg, "cpu", model, ModelConfig(), [])
    assert cpu["gradient_checkpointing"] is False and cpu["liger"] is False and cpu["padding_free"] is False


def test_no_estimate_or_a_distributed_launch_keeps_the_cautious_settings(tiny_model_dir, monkeypatch):
    import torch

    from driftlab.config import ModelConfig, TrainConfig
    from driftlab.models import resolve_model
    from driftlab.train import sft

    model, cfg = resolve_model(str(tiny_model_dir)), TrainConfig(batch_size=4, max_length=64, bf16=True)
    monkeypatch.setattr(sft, "_importable", lambda name: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (80 * GIB, 80 * GIB))
    monkeypatch.setenv("WORLD_SIZE", "2")  # every rank must choose alike, whatever its GPU's free memory
    ranks = sft._machine_choices(cfg, "cuda", model, ModelConfig(), [])
    assert ranks["gradient_checkpointing"] is True and ranks["liger"] is False
    monkeypatch.setenv("WORLD_SIZE", "1")

    def unreadable(*a, **k):
        raise ValueError("an unusual config")

    monkeypatch.setattr("transformers.AutoConfig.from_pretrained", unreadable)
    odd = sft._machine_choices(cfg, "cuda", model, ModelConfig(), [])
    assert odd["gradient_checkpointing"] is True and odd["liger"] is False and odd["padding_free"] is False


def test_checkpointing_as_few_layers_as_fit():
    """Where the step does not fit without checkpointing, one layer in n is recomputed, n as large as fits."""
    none, full = (peak_bytes(QWEN3_4B, TOKENS, LORA_R16, ckpt) for ckpt in (False, True))
    third = peak_bytes(QWEN3_4B, TOKENS, LORA_R16, True, every_n_layers=3)  # 12 of 36 layers
    assert full < third < none
    plan = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=True)
    assert plan.gradient_checkpointing and plan.every_n_layers == 3 and not plan.liger
    assert "checkpointing 12 of 36 layers" in plan.reason and peak_bytes(
        QWEN3_4B, TOKENS, LORA_R16, True, every_n_layers=4) > 0.85 * 24 * GIB  # one layer fewer would not fit
    assert gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=12 * GIB, liger_available=True).every_n_layers == 1  # all
    assert gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=139 * GIB, liger_available=True).every_n_layers == 1
    user = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=True, checkpointing=True)
    assert user.every_n_layers == 1  # the memory-saving setting: every layer
    grpo = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=False, partial=False)
    assert grpo.gradient_checkpointing and grpo.every_n_layers == 1 and "36 of 36 layers" in grpo.reason


def test_a_memory_cap_bounds_the_plan():
    """train.gpu_memory_gib: on a card with room to spare, a cap at TRL defaults' measured peak (18.06 GiB) makes the
    plan recompute the fewest layers under it; a cap above what is free changes nothing."""
    capped = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=139 * GIB, liger_available=True, cap=int(18.06 * GIB))
    assert capped.gradient_checkpointing and 1 < capped.every_n_layers < QWEN3_4B.layers
    assert peak_bytes(QWEN3_4B, TOKENS, LORA_R16, True, every_n_layers=capped.every_n_layers) <= 18.06 * GIB
    assert "the 18.1 GiB of train.gpu_memory_gib" in capped.reason
    loose = gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=True, cap=100 * GIB)
    assert loose == gpu_plan(QWEN3_4B, TOKENS, LORA_R16, free=24 * GIB, liger_available=True)
