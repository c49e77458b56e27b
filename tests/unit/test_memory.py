"""GPU training settings from what fits (train/memory.py), on the CPU: the estimate against the peaks measured on an
H200 (issue 21), and the plan's choices and reasons."""

import pytest

from driftlab.train.memory import (GIB, MIN_MICRO_TOKENS, MIN_PASS_WORK, Shape, gpu_plan, layer_bytes, micro_batches,
                                   pass_rows, peak_bytes)

QWEN3_0_6B = Shape(params=596_049_920, hidden=1024, layers=28, intermediate=3072, vocab=151936, heads=16, kv_heads=8,
                   head_dim=128, qk_norm=True)
QWEN3_4B = Shape(params=4_022_468_096, hidden=2560, layers=36, intermediate=9728, vocab=151936, heads=32, kv_heads=8,
                 head_dim=128, qk_norm=True)
LORA_R16 = 33_030_144  # LoRA r16 on every linear layer of Qwen3-4B
ROWS, ROW_TOKENS = 4, 1024
TOKENS = ROWS * ROW_TOKENS  # batch 4 × 1,024 tokens
# What PEFT's casts of each LoRA input kept per token and layer in the H200 runs, before sft._uncast_adapter_inputs:
# 2·(3·hidden + query width), the difference test_the_layer_estimate_is_what_backward_keeps asserts, at Qwen3-4B's
# widths (_saved_bytes_per_token_layer at those widths counts 173,576 - 150,024 bytes)
CAST_COPIES = 2 * (3 * 2560 + 4096)


def _saved_bytes_per_token_layer(uncast: bool, **widths) -> float:
    """Bytes the tensors saved for backward take, per token and decoder layer (2 layers minus 1, 256 tokens minus
    128: autocast's bf16 copies of the adapters' weights are per layer, not per token), deduplicated by storage,
    weights left out: transformers' Qwen3 under PEFT LoRA r16 on every linear layer, bf16 weights, float32 adapters,
    bf16 autocast, SDPA: what a driftlab SFT step keeps, counted on the CPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from driftlab.train.sft import _uncast_adapter_inputs

    def count(layers: int, tokens: int) -> int:
        torch.manual_seed(0)
        config = Qwen3Config(num_hidden_layers=layers, vocab_size=128, attn_implementation="sdpa", **widths)
        model = get_peft_model(Qwen3ForCausalLM(config).to(torch.bfloat16),
                               LoraConfig(r=16, target_modules="all-linear"))
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        if uncast:
            assert _uncast_adapter_inputs(model) == 7 * layers
        weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
        saved = {}

        def pack(t):
            store = t.untyped_storage()
            if store.data_ptr() not in weights:
                saved[store.data_ptr()] = max(saved.get(store.data_ptr(), 0), store.nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", torch.bfloat16):
            model(input_ids=torch.randint(0, 128, (1, tokens))).logits.sum()
        return sum(saved.values())

    return (count(2, 256) - count(1, 256) - count(2, 128) + count(1, 128)) / 128


def _gib_after(text: str, reason: str) -> float:
    """The GiB figure a plan's reason gives right after `text`."""
    return float(reason.split(text, 1)[1].split(" GiB", 1)[0])


# queries wider than the hidden state, as Qwen3-4B's (4,096 vs 2,560): a formula mixing the two fails
SMALL = dict(hidden_size=256, intermediate_size=768, num_attention_heads=4, num_key_value_heads=2, head_dim=96)


def test_the_layer_estimate_is_what_backward_keeps():
    """layer_bytes (transformers' kernels) against the tensors autograd saves, counted on the CPU for a Qwen3 layer
    of small widths; and the adapters' input casts, turned off, keep less and change nothing else."""
    from transformers import Qwen3Config

    kept, uncast = _saved_bytes_per_token_layer(False, **SMALL), _saved_bytes_per_token_layer(True, **SMALL)
    estimate = layer_bytes(Shape.from_config(Qwen3Config(**SMALL), 1, qk_norm=True))
    assert abs(uncast - estimate) <= 0.02 * uncast, (uncast, estimate)  # LoRA's r-wide outputs: not counted
    # a bf16 copy of each adapted input (q, k, v, gate, up, o, down) gave way to the input itself, which q/k/v and
    # gate/up share: 3 hidden-wide copies and o_proj's query-wide one fewer (down's input is its only user's)
    assert kept - uncast == 2 * (3 * 256 + 4 * 96)


@pytest.mark.parametrize("checkpointing, liger, measured_gib", [
    (False, True, 28.71), (False, False, 34.22), (True, False, 9.73), (True, True, 9.54)])
def test_the_estimate_is_within_7_percent_of_the_measured_peaks(checkpointing, liger, measured_gib):
    """The H200's peaks (issue 21 and its diagnosis run; benchmarks/gpu_throughput.py, batch 4 × 1,024), each
    with PEFT's input casts of its time: on every layer that kept its activations, and on the recomputed one."""
    live = 1 if checkpointing else QWEN3_4B.layers + 1  # layers whose activations were kept at the peak
    estimate = (peak_bytes(QWEN3_4B, TOKENS, LORA_R16, checkpointing, liger=liger) + live * TOKENS * CAST_COPIES) / GIB
    assert abs(estimate - measured_gib) <= 0.07 * measured_gib, estimate


def test_each_pass_takes_the_fewest_rows_that_keep_the_gpu_busy_and_recomputes_only_if_that_does_not_fit():
    roomy = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True)
    assert not roomy.gradient_checkpointing and roomy.liger  # the fast pair measured (then on the whole batch)
    assert roomy.micro_batch == 2  # the fewest rows that keep the GPU busy: memory for nothing spared
    assert "checkpointing off, micro-batches of 2 rows (2 accumulated a step)" in roomy.reason
    assert "within 85% of the 139.0 GiB free" in roomy.reason and "Liger on" in roomy.reason
    assert abs(_gib_after("the whole batch in one pass: ~", roomy.reason) - peak_bytes(
        QWEN3_4B, TOKENS, LORA_R16, False, liger=True) / GIB) < 0.06  # what the split spares, said
    tighter = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=True)
    assert (tighter.micro_batch, tighter.gradient_checkpointing) == (2, False)
    small = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=14 * GIB, liger_available=True)
    assert small.gradient_checkpointing and not small.liger and small.micro_batch == 2  # Liger slowed those steps
    assert "over 85% of the 14.0 GiB free" in small.reason
    plain = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=False)
    assert not plain.gradient_checkpointing and not plain.liger and "not installed" in plain.reason
    svf_like = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=False, extra=10 * GIB)
    assert svf_like.gradient_checkpointing  # what a method adds counts
    whole = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True, micro_batch=ROWS)
    assert whole.micro_batch == ROWS and not whole.gradient_checkpointing and "micro-batches" not in whole.reason


def test_a_pass_holds_enough_work_to_keep_the_gpu_busy_by_the_models_size():
    assert MIN_PASS_WORK == 8 * 10**12 and MIN_MICRO_TOKENS == 2048
    assert pass_rows(4, 1024, QWEN3_4B.params) == 2  # 1 row of 1,024 tokens: under ~2,000 tokens of a 4B model
    assert pass_rows(8, 512, 8_000_000_000) == 4  # a model twice the size: half the tokens are as much work
    assert pass_rows(4, 1024, 8_000_000_000) == 2  # ... but a pass holds MIN_MICRO_TOKENS at least
    assert pass_rows(16, 128, 70_000_000_000) == 16  # 2,048 tokens: the whole batch
    assert pass_rows(12, 4096, QWEN3_4B.params) == 1
    assert pass_rows(16, 128, QWEN3_4B.params) == 16  # 8 rows are 1,024 tokens: too few; the whole batch stays
    assert pass_rows(16, 512, 134_515_008) == 16  # the embedded 135M model: a whole batch is little work
    assert pass_rows(6, 1024, QWEN3_4B.params) == 2 and pass_rows(9, 1024, QWEN3_4B.params) == 3  # divisors only
    assert micro_batches(16, 1024, QWEN3_0_6B.params) == [16, 8, 4, 2]  # fewer rows for memory: ≥ 2,048 tokens
    assert micro_batches(4, 1024, QWEN3_4B.params) == [2] and micro_batches(1, 100, 10**9) == [1]
    none = gpu_plan(QWEN3_4B, 16, 128, LORA_R16, free=12 * GIB, liger_available=True)
    assert none.micro_batch == 16 and none.gradient_checkpointing  # nothing to split off: recompute instead
    grpo = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=False, split=False,
                    partial=False)
    assert grpo.micro_batch == ROWS and grpo.gradient_checkpointing and "36 of 36 layers" in grpo.reason
    given = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=True, micro_batch=1)
    assert given.micro_batch == 1 and not given.gradient_checkpointing  # train.micro_batch: the one tried


def test_a_small_models_batch_stays_whole_where_it_fits_and_splits_before_any_recompute():
    """Qwen3-0.6B's shape, 16 rows of 1,024 tokens: a pass needs ~13,000 tokens to be worth one (MIN_PASS_WORK), so
    with room the batch stays whole; with less, fewer rows a pass before any layer is recomputed."""
    lora = 10_092_544
    roomy = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=80 * GIB, liger_available=True)
    assert roomy.micro_batch == 16 and not roomy.gradient_checkpointing and "micro-batches" not in roomy.reason
    tight = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=16 * GIB, liger_available=True)
    assert tight.micro_batch == 8 and not tight.gradient_checkpointing and tight.liger
    assert "micro-batches of 8 rows" in tight.reason and "the whole batch in one pass would need ~" in tight.reason
    assert abs(_gib_after("would need ~", tight.reason) - peak_bytes(QWEN3_0_6B, 16 * 1024, lora, False, liger=True)
               / GIB) < 0.06
    tighter = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=6 * GIB, liger_available=True)
    assert tighter.micro_batch == 2 and not tighter.gradient_checkpointing
    off = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=16 * GIB, liger_available=True, checkpointing=False)
    assert off.micro_batch == 8 and "may not fit" not in off.reason  # off as set: the most rows that fit
    saving = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=80 * GIB, liger_available=True, checkpointing=True)
    assert saving.micro_batch == 2 and saving.gradient_checkpointing  # the memory-saving setting: the fewest rows
    capped = gpu_plan(QWEN3_0_6B, 16, 1024, lora, free=80 * GIB, liger_available=True, cap=12 * GIB)
    assert capped.micro_batch == 8 and not capped.gradient_checkpointing  # a cap trades speed for memory by rows too
    llama_1b = Shape(params=1_235_814_400, hidden=2048, layers=16, intermediate=8192, vocab=128256, heads=32,
                     kv_heads=8, head_dim=64)  # a pass worth one: 8 of 16 rows; with less room, 4
    fewer = gpu_plan(llama_1b, 16, 1024, 11_272_192, free=12 * GIB, liger_available=True)
    assert fewer.micro_batch == 4 and not fewer.gradient_checkpointing
    said = _gib_after("8,192 tokens a pass, the fewest the plan takes for a model this size, would need ~",
                      fewer.reason)
    assert abs(said - peak_bytes(llama_1b, 8 * 1024, 11_272_192, False, liger=True) / GIB) < 0.06
    small = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=14 * GIB, liger_available=True)
    said = _gib_after("the whole batch in one pass: ~", small.reason)  # said without recompute, whatever is planned
    assert small.gradient_checkpointing and "GiB without checkpointing" in small.reason.split("whole batch")[1]
    assert abs(said - peak_bytes(QWEN3_4B, TOKENS, LORA_R16, False, liger=True) / GIB) < 0.06  # Liger would be on


def test_the_users_settings_win_and_say_so():
    saving = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True, checkpointing=True)
    assert saving.gradient_checkpointing and not saving.liger and "train.gradient_checkpointing" in saving.reason
    assert saving.micro_batch == 2 and saving.every_n_layers == 1  # the memory-saving setting: the fewest rows
    plan = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True, liger=False)
    assert not plan.gradient_checkpointing and not plan.liger and "train.liger" in plan.reason
    off = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=14 * GIB, liger_available=True, checkpointing=False)
    assert not off.gradient_checkpointing and off.micro_batch == 2 and "it may not fit" in off.reason
    given = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True, checkpointing=True,
                     micro_batch=4)
    assert given.micro_batch == 4


def test_shape_reads_transformers_configs_of_several_families():
    from transformers import GPT2Config, OPTConfig, Qwen3Config, Qwen3MoeConfig

    cfg = Qwen3Config(hidden_size=64, num_hidden_layers=2, intermediate_size=128, vocab_size=1000,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    assert Shape.from_config(cfg, params=123, qk_norm=True) == Shape(123, 64, 2, 128, 1000, 4, 2, 32, True)
    assert (Shape.from_config(cfg, 1).q, Shape.from_config(cfg, 1).kv) == (128, 64)
    assert Shape.from_config(OPTConfig(), 1).intermediate == OPTConfig().ffn_dim  # its MLP width by another name
    gpt2 = Shape.from_config(GPT2Config(), 1)
    assert (gpt2.intermediate, gpt2.q, gpt2.kv) == (4 * 768, 768, 768)  # none given: 4·hidden; heads of 64
    moe = Qwen3MoeConfig(hidden_size=64, num_hidden_layers=2, moe_intermediate_size=32, num_experts_per_tok=4)
    assert Shape.from_config(moe, 1).intermediate == 128  # the experts a token is routed to
    assert Shape(1, 64, 2, 128, 1000).q == 64  # heads unknown: queries as wide as the hidden state


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
    assert roomy["micro_batch"] == 4  # the whole batch in one pass
    assert roomy["plan"].startswith("checkpointing off: the step needs ~")  # why, for train.json
    grpo = sft._machine_choices(cfg.model_copy(update={"objective": "grpo"}), "cuda", model, ModelConfig(), [])
    assert grpo["liger"] is False and grpo["padding_free"] is False  # GRPOTrainer takes neither from driftlab
    assert grpo["micro_batch"] == 4  # GRPO's batch is not split: its accumulation sets its generations
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
    assert cpu["micro_batch"] == 4 and sft._machine_choices(cfg.model_copy(update={"micro_batch": 2}), "cpu", model,
                                                            ModelConfig(), [])["micro_batch"] == 2


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
    """Where no micro-batch fits without checkpointing, the smallest is taken and one layer in n recomputed, n as
    large as fits."""
    none, full = (peak_bytes(QWEN3_4B, TOKENS, LORA_R16, ckpt) for ckpt in (False, True))
    third = peak_bytes(QWEN3_4B, TOKENS, LORA_R16, True, every_n_layers=3)  # 12 of 36 layers
    assert full < third < none
    free = 18.2 * GIB  # 2 rows without checkpointing (~15.7 GiB) do not fit in 85% of it
    plan = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=free, liger_available=True)
    n = plan.every_n_layers
    assert plan.gradient_checkpointing and plan.micro_batch == 2 and 1 < n < QWEN3_4B.layers and not plan.liger
    assert peak_bytes(QWEN3_4B, 2 * ROW_TOKENS, LORA_R16, True, every_n_layers=n) <= 0.85 * free < peak_bytes(
        QWEN3_4B, 2 * ROW_TOKENS, LORA_R16, True, every_n_layers=n + 1)  # one layer fewer would not fit
    assert f"checkpointing {-(-36 // n)} of 36 layers, micro-batches of 2 rows" in plan.reason
    assert gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=12 * GIB, liger_available=True).every_n_layers == 1
    assert gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True).every_n_layers == 1
    user = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=free, liger_available=True, checkpointing=True)
    assert user.every_n_layers == 1  # the memory-saving setting: every layer
    grpo = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=free, liger_available=False, partial=False)
    assert grpo.gradient_checkpointing and grpo.every_n_layers == 1 and "36 of 36 layers" in grpo.reason


def test_a_memory_cap_bounds_the_plan():
    """train.gpu_memory_gib: on a card with room to spare, the plan within TRL defaults' measured peak (18.06 GiB) is
    the plan without a cap; a cap under it recomputes layers; a cap above what is free changes nothing."""
    free = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True)
    capped = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True,
                      cap=int(18.06 * GIB))
    assert not capped.gradient_checkpointing and capped.liger and capped.micro_batch == 2
    assert peak_bytes(QWEN3_4B, 2 * ROW_TOKENS, LORA_R16, False, liger=True) <= 18.06 * GIB
    assert "the 18.1 GiB of train.gpu_memory_gib" in capped.reason and capped.micro_batch == free.micro_batch
    tight = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=139 * GIB, liger_available=True, cap=int(14 * GIB))
    assert tight.gradient_checkpointing and 1 < tight.every_n_layers < QWEN3_4B.layers
    loose = gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=True, cap=100 * GIB)
    assert loose == gpu_plan(QWEN3_4B, ROWS, ROW_TOKENS, LORA_R16, free=24 * GIB, liger_available=True)
