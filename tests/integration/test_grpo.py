"""GRPO (train.objective: grpo) on the tiny random Qwen3: it trains and logs its rewards, a killed run resumes to
the same rewards, it continues an SFT adapter, and a bad reward configuration is one error before any training.

The random model never writes a right answer, so these tests reward the completion's length (a reward registered
here, `_length`): its rewards vary within a group, so the policy gets gradients and resume can be checked."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from driftlab.config import SuiteConfig, TrainConfig, load_config
from driftlab.errors import ConfigError
from driftlab.models import ModelUnderTest, resolve_model
from driftlab.config import ModelConfig
from driftlab.train.rewards import REWARDS, Reward
from driftlab.train.sft import resume_training, train_model
from tests.conftest import ARITH, dies_at_step, tiny_study_config

ITEMS = [{"id": f"t{i}", "question": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1), "choices": None,
          "meta": {}, "prompt": f"What is {i} + {i + 1}?", "completion": f"Answer: {2 * i + 1}"} for i in range(16)]
SUITE = SuiteConfig(**{**ARITH, "extraction": "lenient"})


@pytest.fixture(autouse=True)
def length_reward():
    REWARDS.register(Reward(name="_length", summary="test: completion length / 40",
                            make=lambda suite: lambda text, item: len(text) / 40))
    yield
    REWARDS._entries.pop("_length", None)


def _grpo(tiny_model_dir, out, **over):
    cfg = TrainConfig(**{"objective": "grpo", "max_steps": 4, "save_steps": 2, "learning_rate": 5e-3,
                         "warmup_ratio": 0.0, "report_to": [], "cache": False,
                         "grpo": {"group": 4, "prompts_per_step": 2, "max_completion_length": 8,
                                  "rewards": [{"name": "_length"}, {"name": "correct", "weight": 2.0}]}, **over})
    start = ModelUnderTest(resolve_model(str(tiny_model_dir)), ModelConfig())
    return train_model(start, cfg, ITEMS, out, seed=0, target=SUITE)


def _rows(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_grpo_trains_an_adapter_and_logs_its_rewards(tiny_model_dir, tmp_path):
    summary = _grpo(tiny_model_dir, tmp_path / "g")
    assert summary["objective"] == "grpo" and summary["steps"] == 4
    assert summary["accumulation"] == 1 and summary["micro_batch"] is None  # GRPO's batch: never split
    assert (tmp_path / "g/adapter/adapter_config.json").exists()
    rows = [r for r in _rows(tmp_path / "g") if "reward" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert {"rewards/_length/mean", "rewards/correct/mean", "frac_reward_zero_std", "completions/mean_length",
                "completions/clipped_ratio", "loss", "grad_norm"} <= set(r)
        assert 0 <= r["rewards/correct/mean"] <= 0.25  # the random model is rarely right (on a GPU, 1 of 8 once)
        assert math.isclose(r["reward"], r["rewards/_length/mean"] + 2 * r["rewards/correct/mean"], abs_tol=1e-6)
        assert r["frac_reward_zero_std"] < 1  # lengths differ within groups: there is a signal
    grpo = summary["grpo"]
    assert grpo["steps"] == 4 and grpo["k"] == 2 and grpo["gain_ci95"][0] <= grpo["gain"] <= grpo["gain_ci95"][1]


def test_a_killed_grpo_run_resumes_to_the_same_rewards(tiny_model_dir, tmp_path, monkeypatch):
    _grpo(tiny_model_dir, tmp_path / "ref")
    with dies_at_step(monkeypatch, 3):  # after checkpoint-2
        _grpo(tiny_model_dir, tmp_path / "run")
    resumed = resume_training(tmp_path / "run")
    assert resumed["resumed"] and resumed["objective"] == "grpo"
    ref = {r["step"]: r["reward"] for r in _rows(tmp_path / "ref") if "reward" in r}
    run = {r["step"]: r["reward"] for r in _rows(tmp_path / "run") if "reward" in r}
    assert sorted(run) == [1, 2, 3, 4]
    assert math.isclose(run[4], ref[4], rel_tol=0.01), (run, ref)


def test_grpo_continues_an_sft_adapter(tiny_model_dir, tmp_path):
    start = ModelUnderTest(resolve_model(str(tiny_model_dir)), ModelConfig())
    sft = train_model(start, TrainConfig(max_steps=2, batch_size=8, report_to=[], cache=False), ITEMS,
                      tmp_path / "sft", seed=0)
    rl = _grpo(tiny_model_dir, tmp_path / "rl", init_from=str(tmp_path / "sft"), max_steps=2)
    assert rl["trainable_params"] == sft["trainable_params"]
    sft_w = (tmp_path / "sft/adapter/adapter_model.safetensors").read_bytes()
    assert (tmp_path / "rl/adapter/adapter_model.safetensors").read_bytes() != sft_w


@pytest.mark.parametrize("train, message", [
    ({"objective": "grpo", "grpo": {"rewards": [{"name": "corect"}]}}, r"config key 'train.grpo.rewards.0.name'"),
    ({"method": "grpo", "chains": {"source": "gold"}}, r"objective grpo .* chains.source apply to objective sft"),
    ({"objective": "grpo", "mix": [{"name": "replay", "source": "self_replay", "ratio": 0.5}]},
     r"mix apply to objective sft"),
    ({"objective": "grpo", "offload_activations": True}, r"offload_activations apply to objective sft"),
    ({"objective": "grpo", "micro_batch": 1}, r"micro_batch apply to objective sft"),
])
def test_bad_grpo_configuration_is_one_error_before_training(tmp_path, tiny_model_dir, train, message):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["train"].update(train)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_grpo_needs_a_generated_target_and_init_from_an_earlier_variant(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["data"]["target"] = {"name": "caps", "source": "jsonl", "path": "capitals.jsonl", "mode": "loglik"}
    cfg["variants"] = [{"name": "rl", "train": {"objective": "grpo"}}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"variants.0.train.objective.*'caps' is a loglik suite"):
        load_config(path)
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["variants"] = [{"name": "rl", "train": {"method": "grpo", "init_from": "sft"}}, {"name": "sft"}]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"'sft' is not a variant trained before 'rl'"):
        load_config(path)
    cfg["variants"] = [{"name": "sft"}, {"name": "rl", "train": {"method": "grpo", "init_from": "sft"}}]
    path.write_text(yaml.safe_dump(cfg))
    loaded = load_config(path)
    rl = loaded.variant_train(loaded.variants[1])
    assert (rl.objective, rl.method, rl.init_from) == ("grpo", "lora", "sft")


def test_completions_are_sampled_from_a_synced_plain_copy_of_the_policy(tiny_model_dir, tmp_path, monkeypatch):
    """The copy GRPO samples from holds the base weights with the current LoRA update merged in (its logits match
    the PEFT policy's), runs its own forward (not the training model's: TRL's patched forward closes over it), and
    follows the adapter when it changes."""
    import torch

    from driftlab.train import grpo

    made = {}

    def keep(**kwargs):
        made["trainer"] = grpo._trainer_class()(**kwargs)
        return made["trainer"]

    monkeypatch.setattr(grpo, "_Trainer", keep)
    _grpo(tiny_model_dir, tmp_path / "g", max_steps=2)
    trainer = made["trainer"]
    policy = trainer.accelerator.unwrap_model(trainer.model)
    copy = trainer._synced_copy()
    assert copy is not None and "forward" not in vars(copy)
    x = torch.tensor([[5, 9, 12, 40, 7, 30]])

    def logits(model):
        device = next(model.parameters()).device
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.args.bf16):
            return model(input_ids=x.to(device)).logits.float().cpu()

    tol = 0.1 if trainer.args.bf16 else 1e-4
    before = logits(copy)
    assert torch.allclose(before, logits(policy), atol=tol)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # a large update of the adapter
        with policy.disable_adapter():
            base = logits(policy)
    assert torch.equal(logits(trainer._synced_copy()), before)  # the same step: not synced again
    trainer._copy_step = None  # a new step
    moved = logits(trainer._synced_copy())
    assert torch.allclose(moved, logits(policy), atol=tol) and not torch.allclose(moved, base, atol=tol)


def test_a_reply_cut_by_the_budget_earns_nothing_under_strict_extraction():
    from driftlab.train.rewards import reward_functions
    from driftlab.config import RewardSpec

    item = json.dumps({"question": "What is 2 + 3?", "answer": "5", "choices": None, "meta": {}})
    strict = SuiteConfig(**{**ARITH, "extraction": "strict"})
    (func,), _ = reward_functions([RewardSpec(name="correct")], strict, budget=4, eos=99)
    replies = ["Answer: 5", "Answer: 5", "Answer: 5"]
    ids = [[7, 8, 9, 10], [7, 8, 9, 99], [7, 8]]  # cut at the budget; ended by eos at it; ended early
    assert func(None, replies, [item] * 3, completion_ids=ids) == [0.0, 1.0, 1.0]
    (lenient,), _ = reward_functions([RewardSpec(name="correct")], SUITE, budget=4, eos=99)
    assert lenient(None, replies, [item] * 3, completion_ids=ids) == [1.0, 1.0, 1.0]  # as the eval: lenient reads it
