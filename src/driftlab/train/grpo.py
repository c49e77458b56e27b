"""GRPO (train.objective: grpo): TRL's GRPOTrainer on the target's training prompts, rewarded by the target suite's
own scorer (train/rewards/). Everything around the trainer — the method's adapter, callbacks, checkpoints, resume,
the non-finite guard, the train cache, train.json — is the same run as SFT's (train/sft.py calls `build_trainer`).

A step samples `grpo.group` completions for each of `grpo.prompts_per_step` prompts, scores each with the reward
functions, and moves the policy toward the completions that beat their group's mean (TRL: group-relative
advantages, DAPO loss normalisation by default, no reference model at beta 0).
"""

from __future__ import annotations

import json
import math

import torch


def build_trainer(lm, tokenizer, common: dict, train_set: list[dict], cfg, suite, model_cfg, callbacks,
                  peft_config):
    """A GRPOTrainer for `train_set`'s prompts with the run's common TrainingArguments (`common`)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from driftlab.train.rewards import reward_functions
    from driftlab.train.sft import to_conversation

    if suite is None:
        raise ValueError("GRPO needs the target suite (its scorer is the reward)")
    g = cfg.grpo
    rows = []
    for it in train_set:
        row = {"prompt": to_conversation({**it, "completion": ""}, model_cfg.system_prompt,
                                         model_cfg.enable_thinking)["prompt"],
               "item": json.dumps({k: it.get(k) for k in ("question", "answer", "choices", "meta")})}
        rows.append(row)
    funcs, weights = reward_functions(g.rewards, suite, g.max_completion_length, tokenizer.eos_token_id)
    kwargs = {}
    if model_cfg.enable_thinking is not None:
        kwargs["chat_template_kwargs"] = {"enable_thinking": model_cfg.enable_thinking}
    args = GRPOConfig(**common, per_device_train_batch_size=g.group * g.prompts_per_step, num_generations=g.group,
                      max_completion_length=g.max_completion_length, temperature=g.temperature, beta=g.beta,
                      reward_weights=weights, loss_type=g.loss_type,
                      mask_truncated_completions=g.mask_truncated_completions, log_completions=False,
                      shuffle_dataset=True, **kwargs)
    return _Trainer(model=lm, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(rows),
                    processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)


def _trainer_class():
    from trl import GRPOTrainer

    class Trainer(GRPOTrainer):
        """GRPOTrainer whose completions are sampled from a plain copy of the policy: the base weights with the
        current LoRA update merged in, in the training precision (bf16 where the hardware has it), synced once per
        step — as TRL's vLLM path samples from an engine whose weights it syncs. TRL samples from the PEFT model
        itself, where each of ~210 adapted Linear layers runs the base product and the low-rank one separately at
        every token, and in float32 on a CPU (its generation runs outside autocast). Where the copy does not apply
        (no PEFT LoRA model, DoRA, a quantized base, several processes) TRL's own path runs, under the run's autocast.

        Measured on the embedded model from the gold-chain SFT adapter (6 steps of 4 prompts x 4 completions, at
        most 64 tokens, 2-core CPU): TRL's generation under autocast 58.7 s; from the synced bf16 copy 51.9 s (its
        generation 2.8-3.0 s a step against 5.5-6.0); with the LM head scoring completion tokens only
        (train/lm_head.py, as in SFT) 32.0 s, 5.3 s a step."""

        _copy, _copy_step = None, None

        def _generate_single_turn(self, *args, **kwargs):
            copy = self._synced_copy()
            if copy is None:
                with self.accelerator.autocast():
                    return super()._generate_single_turn(*args, **kwargs)
            wrapped, self.model_wrapped = self.model_wrapped, copy  # what TRL unwraps and calls generate on
            try:
                return super()._generate_single_turn(*args, **kwargs)
            finally:
                self.model_wrapped = wrapped

        @torch.no_grad()
        def _synced_copy(self):
            import copy as copying

            from peft import PeftModel
            from peft.tuners.lora import LoraLayer

            model = self.accelerator.unwrap_model(self.model)
            if (not isinstance(model, PeftModel) or self.accelerator.num_processes > 1
                    or getattr(model.get_base_model(), "is_quantized", False)):  # 4-bit weights cannot take a merge
                return None
            layers = [(n, m) for n, m in model.base_model.model.named_modules() if isinstance(m, LoraLayer)]
            if any(any(m.use_dora.values()) for _, m in layers):
                return None
            if self._copy is None:
                plain = copying.deepcopy(model).merge_and_unload()
                # TRL patched the model's forward (its fused LM head) with a closure over the *training* model's
                # forward, which a deep copy keeps: the copy gets its class's own forward back
                vars(plain).pop("forward", None)
                dtype = torch.bfloat16 if self.args.bf16 else next(plain.parameters()).dtype
                self._copy = plain.to(dtype).eval().requires_grad_(False)
            if self._copy_step != self.state.global_step:
                targets = dict(self._copy.named_modules())
                for name, layer in layers:
                    adapter = layer.active_adapters[0]
                    merged = layer.get_base_layer().weight + layer.get_delta_weight(adapter)
                    targets[name].weight.copy_(merged.to(targets[name].weight.dtype))
                self._copy_step = self.state.global_step
            return self._copy

    return Trainer


def _Trainer(**kwargs):
    return _trainer_class()(**kwargs)


def reward_summary(rows: list[dict], k: int = 5, n_boot: int = 2000, seed: int = 0) -> dict | None:
    """Mean reward of the first and last `k` logged steps, their difference and its bootstrap 95% CI (steps
    resampled within each end): did the reward rise. The same for each reward function (`by_function`: a format
    reward can rise while correctness does not). None without reward rows."""
    rewards = _finite([r.get("reward") for r in rows if "reward" in r])
    zero = [r["frac_reward_zero_std"] for r in rows if r.get("frac_reward_zero_std") is not None]
    if len(rewards) < 2:
        return None
    k = min(k, len(rewards) // 2)
    names = sorted({key.split("/")[1] for r in rows for key in r if key.startswith("rewards/") and
                    key.endswith("/mean")})
    by_function = {}
    for name in names:
        values = _finite([r.get(f"rewards/{name}/mean") for r in rows if "reward" in r])
        if len(values) >= 2 * k:
            by_function[name] = _rise(values, k, n_boot, seed)
    return {"steps": len(rewards), "k": k, **_rise(rewards, k, n_boot, seed),
            "zero_std_groups": sum(zero) / len(zero) if zero else None,
            "mean": sum(rewards) / len(rewards), "by_function": by_function}


def _finite(values: list) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _rise(values: list[float], k: int, n_boot: int, seed: int) -> dict:
    first, last = values[:k], values[-k:]
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.tensor(first), torch.tensor(last)
    diffs = (b[torch.randint(k, (n_boot, k), generator=gen)].mean(1)
             - a[torch.randint(k, (n_boot, k), generator=gen)].mean(1)).sort().values
    return {"first": sum(first) / k, "last": sum(last) / k, "gain": sum(last) / k - sum(first) / k,
            "gain_ci95": [diffs[int(0.025 * n_boot)].item(), diffs[int(0.975 * n_boot) - 1].item()]}
