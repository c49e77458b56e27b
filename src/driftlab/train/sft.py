"""Stage 2 — train: supervised fine-tuning with TRL's SFTTrainer, every method behind `train.method`.

Recipe: load the base (4-bit for QLoRA), let the registered method decide what may change (train/methods/), build
the training set (target items, template augmentation, replay mix) and write it down, configure TRL for the device,
train with callbacks that log to the run dir / TensorBoard and stop on a non-finite loss, then save the method's
artifact (adapter/, expert/ or model/) and a train.json summary. `resume_training` continues a killed run from its last
checkpoint (optimizer, scheduler, RNG and data position come back with it: HF Trainer's resume).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console

from driftlab.config import EvalConfig, ModelConfig, SuiteConfig, TargetConfig, TrainConfig
from driftlab.errors import DriftlabError
from driftlab.models import ModelUnderTest, ResolvedModel, has_bf16, load_pretrained, pick_device, pick_dtype
from driftlab.runs import is_main_process, read_jsonl, world_size, write_json, write_jsonl
from driftlab.train.cache import cache_key, lookup, store
from driftlab.train.callbacks import (JsonlLogCallback, NonFiniteLossGuard, ProgressBarCallback, SnapshotCallback,
                                      checkpoints_newest_first, is_complete, last_good_checkpoint)
from driftlab.train.grpo import reward_summary
from driftlab.train.lm_head import completion_tokens_only
from driftlab.train.methods import METHODS, selected_linears

console = Console(stderr=True)


def train_model(start: ModelUnderTest, train_cfg: TrainConfig, items: list[dict], out_dir: Path, seed: int = 0,
                exclude_prompts: set[str] | None = None, eval_cfg: EvalConfig | None = None,
                scorer: str | None = None, target: SuiteConfig | None = None) -> dict:
    """Fine-tune the base of `start` on `items` (+ train.mix); writes train_set.jsonl, train_config.json,
    checkpoints/, the artifact, train_log.jsonl and train.json into out_dir. `exclude_prompts`: eval prompts no
    replay item may be. `target`: the target suite (GRPO's reward is its scorer; its scorer is `scorer`'s default)."""
    if train_cfg.objective == "grpo" and target is None:
        raise DriftlabError("train.objective=grpo: the reward is the target suite's scorer, and none was given")
    if train_cfg.probe_every and world_size() > 1:  # a sharded model is saved by every rank together, not in a callback
        raise DriftlabError("train.probe_every runs in a single process; drop it under accelerate launch")
    scorer = scorer or (target.scorer if target is not None else None)
    from driftlab.train.mix import build_training_set

    out_dir = Path(out_dir)
    model, model_cfg, method = start.base, start.config, METHODS.get(train_cfg.method)
    sharded = (os.environ.get("ACCELERATE_USE_FSDP", "false") == "true"
               or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")
    if not method.shardable and world_size() > 1 and sharded:
        raise DriftlabError(f"train.method={method.name} under FSDP or ZeRO-3 is not supported (its parameters would "
                            "be sharded); use configs/accelerate/multi_gpu.yaml or zero2.yaml")
    # Every rank builds the same training set (deterministic for the seed); rank 0 writes it down.
    train_set, mix_report = build_training_set(items, train_cfg, start.base_only(), seed, exclude_prompts or set(),
                                               eval_cfg, scorer)
    device = pick_device(model_cfg.device)
    choices = _machine_choices(train_cfg, device, model, model_cfg, train_set)
    if is_main_process():
        write_jsonl(out_dir / "train_set.jsonl", train_set)
        write_json(out_dir / "train_config.json", {
            "model": {"name": model.name, "path": model.path, "fingerprint": model.fingerprint},
            "model_config": model_cfg.model_dump(mode="json"), "train": train_cfg.model_dump(mode="json"),
            "seed": seed, "mix": mix_report, "choices": choices,  # what --resume reuses
            "target": target.model_dump(mode="json") if target is not None else None})
    key = None
    if train_cfg.cache and world_size() == 1:
        # recomputed layers: the same weights
        keyed = {k: v for k, v in choices.items() if k not in ("gradient_checkpointing", "every_n_layers", "plan")}
        if keyed.get("micro_batch") == train_cfg.batch_size:  # the whole batch at once: as before micro-batches
            keyed.pop("micro_batch")
        key = cache_key(model.fingerprint, model_cfg.model_dump(mode="json"), _keyed(train_cfg, target), train_set,
                        seed, device, keyed)
        hit = lookup(key, method.artifact, out_dir)
        if hit is not None:
            hit["config"] = train_cfg.model_dump(mode="json")  # this run's (a starting adapter's path is its own)
            write_json(out_dir / "train.json", hit)
            return hit
    summary = _train(model, model_cfg, train_cfg, train_set, out_dir, seed, mix_report, choices, resume=None,
                     target=target)
    if key is not None:
        store(key, out_dir, Path(summary["artifact"]), summary)
        summary["cache"] = {"key": key, "hit": False}
        write_json(out_dir / "train.json", summary)
    return summary


def resume_training(out_dir: Path) -> dict:
    """Continue the run in `out_dir` from its last checkpoint, with the exact training set and config it began with."""
    from driftlab.models import resolve_model

    out_dir = Path(out_dir)
    meta_path = out_dir / "train_config.json"
    if not meta_path.exists():
        raise DriftlabError(f"{out_dir}: not a driftlab train run (no train_config.json)")
    if (out_dir / "train.json").exists():
        raise DriftlabError(f"{out_dir}: this run finished (train.json is written); nothing to resume")
    if not any((out_dir / "checkpoints").glob("checkpoint-*")):
        raise DriftlabError(f"{out_dir}: no checkpoint to resume from yet; start the run again instead")
    meta = json.loads(meta_path.read_text())
    model = resolve_model(meta["model"]["name"] if meta["model"]["name"] == "embedded" else meta["model"]["path"])
    if model.fingerprint != meta["model"]["fingerprint"]:
        raise DriftlabError(f"{out_dir}: the base model's weights changed since this run began; cannot resume")
    model_cfg, cfg = ModelConfig.model_validate(meta["model_config"]), TrainConfig.model_validate(meta["train"])
    train_set = read_jsonl(out_dir / "train_set.jsonl")
    # the first run's machine choices (another free-memory reading could pick others mid-run); older runs: anew
    choices = meta.get("choices") or _machine_choices(cfg, pick_device(model_cfg.device), model, model_cfg, train_set)
    choices.setdefault("padding_free", bool(cfg.padding_free))  # a run begun before padding-free was a choice
    choices.setdefault("every_n_layers", 1)  # or before checkpointing could skip layers
    choices.setdefault("micro_batch", cfg.micro_batch or cfg.batch_size)  # or before micro-batches
    target = TargetConfig.model_validate(meta["target"]) if meta.get("target") else None
    start = _resume_point(out_dir / "checkpoints")
    return _train(model, model_cfg, cfg, train_set, out_dir, meta["seed"], meta["mix"], choices, resume=start,
                  target=target)


def _train(model: ResolvedModel, model_cfg: ModelConfig, cfg: TrainConfig, train_set: list[dict], out_dir: Path,
           seed: int, mix_report: dict, choices: dict, resume: Path | None, target: SuiteConfig | None = None) -> dict:
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    device = pick_device(model_cfg.device)
    on_gpu = device == "cuda"
    method = METHODS.get(cfg.method)
    quant = method.quantization(cfg) if method.quantization else None
    lm, tokenizer = load_pretrained(model, model_cfg.dtype, device, quant)  # the Trainer moves it to the device
    if choices["attention"] is not None:
        lm.set_attn_implementation(choices["attention"])
    base_params = _param_count(lm)  # before the method wraps or freezes anything
    planned = cfg.model_copy(update={"gradient_checkpointing": choices["gradient_checkpointing"]})  # qlora reads it
    lm, peft_config = _start_adapter(lm, cfg.init_from, method) if cfg.init_from else method.prepare(lm, planned)

    bf16 = choices["bf16"]
    checkpointing = choices["gradient_checkpointing"]
    # rows per pass, the batch's others accumulated into the same step (SFT; GRPO's batch is its generations')
    micro = (choices.get("micro_batch") or cfg.batch_size) if cfg.objective == "sft" else cfg.batch_size
    common = dict(  # TrainingArguments shared by SFT and GRPO
        output_dir=str(out_dir / "checkpoints"),
        gradient_accumulation_steps=cfg.grad_accum * (cfg.batch_size // micro),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        # TRL's defaults (bf16 on, gradient checkpointing on) suit a GPU; every precision/memory knob is set from the
        # device instead: bf16 autocast only on bf16 hardware, no recompute on CPU.
        bf16=bf16,
        fp16=False,
        activation_checkpointing=checkpointing,
        # one decoder layer in n recomputed (train/memory.py: the fewest that fit); transformers pops the key
        activation_checkpointing_kwargs={"use_reentrant": False, "every_n_layers": choices["every_n_layers"]}
        if checkpointing and choices.get("every_n_layers", 1) > 1 else None,
        use_cpu=not on_gpu,
        ddp_broadcast_buffers=method.broadcast_buffers,
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # the default hides a NaN loss behind the previous steps' mean
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=["mlflow"] if "mlflow" in cfg.report_to else [],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,  # the rich progress bar (with ETA) replaces tqdm's
    )
    resume_step = int(resume.name.split("-")[1]) if resume else None
    log_cb, guard = JsonlLogCallback(out_dir / "train_log.jsonl", keep_until_step=resume_step), NonFiniteLossGuard()
    callbacks = [log_cb, guard, ProgressBarCallback(out_dir.name)]
    if "tensorboard" in cfg.report_to and is_main_process():
        # a resumed run purges the steps the killed one logged after its checkpoint: they are trained again
        callbacks.append(_tensorboard(out_dir / "tensorboard", purge_step=resume_step + 1 if resume_step else None))
    if "mlflow" in cfg.report_to:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (out_dir / "mlruns").resolve().as_uri())  # not ./mlruns
    if cfg.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    snapshots = SnapshotCallback(cfg.probe_every, out_dir / "snapshots") if cfg.probe_every else None
    if snapshots:
        callbacks.append(snapshots)
    n_eval = int(len(train_set) * cfg.eval_fraction)  # held out for an eval loss (SFT only: validated)
    if cfg.objective == "grpo":
        from driftlab.train.grpo import build_trainer

        trainer = build_trainer(lm, tokenizer, common, train_set, cfg, target, model_cfg, callbacks, peft_config)
    else:
        rows = [to_conversation(it, model_cfg.system_prompt, model_cfg.enable_thinking) for it in train_set]
        train_ds, eval_ds = Dataset.from_list(rows[n_eval:]), (Dataset.from_list(rows[:n_eval]) if n_eval else None)
        args = SFTConfig(
            **common,
            per_device_train_batch_size=micro,
            max_length=None if choices.get("padding_free") else cfg.max_length,  # padding-free, unpacked: nothing cut
            use_liger_kernel=choices["liger"],
            activation_offloading=cfg.offload_activations and on_gpu,  # CUDA streams and pinned memory
            padding_free=bool(choices.get("padding_free")),
            completion_only_loss=True,
            eval_strategy="steps" if eval_ds is not None else "no",
            eval_steps=cfg.save_steps,
            load_best_model_at_end=bool(cfg.early_stopping_patience),
            metric_for_best_model="eval_loss" if cfg.early_stopping_patience else None,
            include_num_input_tokens_seen="non_padding",
        )
        trainer = SFTTrainer(model=lm, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    if snapshots:
        snapshots.save = lambda path: method.save(trainer, tokenizer, cfg, path, model)
    if bf16 and quant is None and not trainer.is_deepspeed_enabled:  # after TRL wrapped the adapter: only then
        _float32_master(trainer.model)  # is what is frozen frozen (QLoRA, ZeRO-3: TRL's own dtypes, kept)
        if cfg.objective == "sft":  # GRPO's generation may run outside autocast: a bf16 input to a float32 adapter
            _uncast_adapter_inputs(trainer.model)
        if getattr(trainer.args, "activation_offloading", False):  # it noted the parameters' storages at build
            trainer.maybe_activation_offload_context.update_model_params(trainer.model)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the rich bar and train_log.jsonl suffice
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = base_params

    t0 = time.perf_counter()
    try:
        with completion_tokens_only(device):  # SFT's and GRPO's LM head: TRL's same fused forward
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except OSError as err:  # a full disk or a lost mount while a checkpoint or log is written
        good, _ = last_good_checkpoint(out_dir / "checkpoints")
        raise DriftlabError(f"training stopped at step {trainer.state.global_step}: {err.strerror or err}"
                            + (f" writing {err.filename}" if err.filename else "")
                            + f"; last complete checkpoint: {good or 'none'}"
                            + (f"; `driftlab train --resume {out_dir}` continues from it" if good else "")) from None
    finally:  # an exception skips on_train_end: the live bar would stay on screen under the error
        for cb in callbacks:
            if isinstance(cb, ProgressBarCallback):
                cb.close()
    wall = time.perf_counter() - t0
    if guard.bad_step is not None:
        good, bad = last_good_checkpoint(out_dir / "checkpoints")
        what = "loss" if guard.bad_what == "loss" else "gradient norm"
        raise DriftlabError(f"training stopped: {what} became {guard.bad_value} at step {guard.bad_step}; last good "
                            f"checkpoint: {good or 'none'}"
                            + (f" ({', '.join(bad)}: cut short or non-finite weights)" if bad else "")
                            + " (lower train.learning_rate?)")

    artifact = out_dir / method.artifact
    method.save(trainer, tokenizer, cfg, artifact, model)
    losses = [r["loss"] for r in log_cb.rows if "loss" in r]
    eval_losses = [r["eval_loss"] for r in log_cb.rows if "eval_loss" in r]
    tokens = trainer.state.num_input_tokens_seen
    summary = {
        "method": cfg.method,
        "objective": cfg.objective,
        "base_model": model.name,
        "base_fingerprint": model.fingerprint,
        "artifact": str(artifact),
        "device": device,
        "bf16": bf16,
        "attention": lm.config._attn_implementation,
        "gradient_checkpointing": bool(trainer.args.activation_checkpointing), "liger": bool(choices["liger"]),
        "checkpointed_layers": _checkpointed(trainer.model) if trainer.args.activation_checkpointing else 0,
        # rows per forward/backward pass, as the trainer ran them (SFT: the rest of the batch accumulated)
        "micro_batch": trainer.args.per_device_train_batch_size if cfg.objective == "sft" else None,
        "accumulation": trainer.args.gradient_accumulation_steps,
        "padding_free": bool(choices.get("padding_free")),
        "offload_activations": bool(trainer.args.activation_offloading) if cfg.objective == "sft" else False,
        "gpu_plan": choices.get("plan"),  # why those settings, on a GPU (train/memory.py)
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total,
        "train_items": len(train_set) - n_eval,
        "eval_items": n_eval,
        "mix": mix_report,
        "steps": trainer.state.global_step,
        "stopped_early": trainer.state.global_step < trainer.state.max_steps,
        "resumed": resume is not None,
        "tokens": tokens,
        "tokens_per_s": (tokens - log_cb.start_tokens) / wall if wall else 0.0,  # this process's share
        "wall_s": wall,
        "peak_memory_mb": max((r.get("peak_memory_mb", 0) for r in log_cb.rows), default=None),
        "first_loss": losses[0] if losses else None,
        "final_loss": _mean_tail(losses),
        "train_loss": _whole_run_loss(log_cb.rows, resume_step, result.training_loss, trainer.state.global_step),
        "best_eval_loss": min(eval_losses) if eval_losses else None,
        **({"grpo": reward_summary(log_cb.rows)} if cfg.objective == "grpo" else {}),
        "config": cfg.model_dump(mode="json"),
        "world_size": world_size(),
    }
    if is_main_process():
        write_json(out_dir / "train.json", summary)
        if not cfg.keep_checkpoints:  # the run is complete (train.json): its checkpoints only served --resume
            shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    _finish_distributed()
    return summary


# Longest training sequence (tokens) up to which eager attention beats SDPA on CPU under bf16 autocast (SDPA's CPU
# flash backward is slow on short bf16 sequences; float32 shows no difference). The measurements behind the number
# are in benchmarks/NOTES.md ("Eager attention on short sequences").
EAGER_MAX_TOKENS = 160


def _checkpointed(model) -> int:
    """Decoder layers that recompute their activations in backward (transformers' GradientCheckpointingLayer)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return sum(bool(m.gradient_checkpointing) for m in model.modules() if isinstance(m, GradientCheckpointingLayer))


def _float32_master(lm) -> None:
    """Trainable weights in float32 under bf16 autocast, whatever the load dtype (bf16 on a GPU): AdamW's updates
    on bf16 weights round away (a weight of 0.02 has a bf16 spacing of 1.2e-4, an update at lr 1e-5 is smaller),
    so full and module fine-tunes would not train. PEFT does the same for adapters (autocast_adapter_dtype); this
    covers the rest. Frozen weights stay as loaded. Only under autocast (a float32 layer fed bf16 inputs fails
    without it), and not where TRL sets the adapters' dtype on purpose: QLoRA's bf16 adapters, DeepSpeed's own
    float32 master copies (ZeRO-3 with float32 adapters fails, TRL issue #6089)."""
    import torch

    for p in lm.parameters():
        if p.requires_grad and p.is_floating_point() and p.dtype != torch.float32:
            p.data = p.data.float()


def sums_over_passes(model_class) -> bool:
    """Whether transformers' Trainer divides each pass's loss by the labelled tokens of the whole accumulated batch
    (`num_items_in_batch`, which TRL's SFT loss takes), making micro-batches the same update as the whole batch: it
    does for a model class that accepts loss kwargs (its `accepts_loss_kwargs`, else a forward taking **kwargs —
    the Trainer's own test); otherwise each pass's loss is its own mean, and rows weigh differently."""
    import inspect

    if hasattr(model_class, "accepts_loss_kwargs"):
        return bool(model_class.accepts_loss_kwargs)
    params = inspect.signature(model_class.forward).parameters.values()
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params)


def _warn_uneven_micro_batches(cfg: TrainConfig, model: ResolvedModel) -> None:
    """A micro_batch the user set, on a model whose trainer takes no token count of the whole batch: said once."""
    import warnings

    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        model_class = AutoModelForCausalLM._model_mapping[type(AutoConfig.from_pretrained(model.path))]
    except Exception:  # an unusual config: the GPU plan says what it could not read
        return
    if not sums_over_passes(model_class):
        warnings.warn(f"train.micro_batch={cfg.micro_batch}: {model_class.__name__} takes no token count of the "
                      f"whole batch (accepts_loss_kwargs), so each micro-batch's loss is its own mean and the update "
                      f"differs from batch_size={cfg.batch_size} in one pass", stacklevel=2)


def _uncast_adapter_inputs(lm) -> int:
    """PEFT casts each LoRA layer's input to the adapter's dtype (float32 here: `_float32_master`) before its A
    matrix, and autocast casts it back to bf16 for the product: two copies per adapted linear layer, the bf16 one
    kept for backward in place of the input itself — on Qwen3-4B 23.5 KB a token and decoder layer, 14% of the
    layer's activations (counted with saved-tensor hooks; tests/unit/test_memory.py). bf16 → float32 → bf16 is exact,
    so under autocast the casts change no value, and they are turned off (PEFT's switch behind
    `peft.helpers.disable_input_dtype_casting`). Not for DoRA, whose weight-norm arithmetic the cast does change.
    Returns the number of layers switched."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in lm.modules() if isinstance(m, LoraLayer) and not any(m.use_dora.values())]
    for m in layers:
        m.cast_input_dtype_enabled = False
    return len(layers)


def _machine_choices(cfg: TrainConfig, device: str, model: ResolvedModel, model_cfg: ModelConfig,
                     train_set: list[dict]) -> dict:
    """Settings left to the machine ("auto"/None in the config), decided once here for training and the
    train-cache key. attention None = the model's own default (SDPA)."""
    bf16 = cfg.bf16 if cfg.bf16 is not None else has_bf16(device)
    attention = None if cfg.attention == "auto" else cfg.attention
    if cfg.micro_batch and cfg.micro_batch < cfg.batch_size:
        _warn_uneven_micro_batches(cfg, model)
    if cfg.attention == "auto" and device == "cpu" and bf16 and train_set:
        if _longest_tokens(model, model_cfg, train_set) <= EAGER_MAX_TOKENS:
            attention = "eager"
    if device != "cuda":  # CPU: memory is plentiful and recompute costs ~1/3 more FLOPs; no Liger kernels
        return {"bf16": bf16, "attention": attention, "liger": bool(cfg.liger),
                "gradient_checkpointing": bool(cfg.gradient_checkpointing), "every_n_layers": 1,
                "padding_free": bool(cfg.padding_free), "micro_batch": cfg.micro_batch or cfg.batch_size}
    plan, padding_free = _gpu_plan(cfg, model, model_cfg, train_set, bf16)
    if padding_free and cfg.attention == "auto":
        attention = "flash_attention_2"
    if is_main_process():
        console.print(f"[dim]GPU settings: {plan.reason}; padding-free {'on' if padding_free else 'off'}[/]")
    return {"bf16": bf16, "attention": attention, "liger": plan.liger,
            "gradient_checkpointing": plan.gradient_checkpointing, "every_n_layers": plan.every_n_layers,
            "padding_free": padding_free, "plan": plan.reason,  # why: in train.json, not in the cache key
            "micro_batch": (plan.micro_batch if cfg.objective == "sft" else None) or cfg.micro_batch or cfg.batch_size}


def _gpu_plan(cfg: TrainConfig, model: ResolvedModel, model_cfg: ModelConfig, train_set: list[dict], bf16: bool):
    """(train/memory.py's plan, padding-free) for this run: the model's shape and trainable parameters counted on
    the meta device (no weights loaded), the longest row's tokens, the free memory of this process's GPU now.
    Padding-free (None in the config) is on for SFT under bf16 where flash-attention 2 is usable by this model and
    no row is longer than train.max_length (TRL's padding-free does not truncate: on, it would train on more).
    Under a distributed launch every rank must choose alike: checkpointing on, Liger off, unless set."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import is_flash_attn_2_available

    from driftlab.train.memory import GIB, Shape, fallback_plan, gpu_plan

    longest = _longest_tokens(model, model_cfg, train_set) if train_set else cfg.max_length
    try:
        config = AutoConfig.from_pretrained(model.path)
        with torch.device("meta"):
            meta = AutoModelForCausalLM.from_config(config)
    except Exception as err:  # an estimate only: a config it cannot read keeps the cautious settings
        return fallback_plan(cfg.gradient_checkpointing, cfg.liger, f"{type(err).__name__}: {err}"), \
            bool(cfg.padding_free)
    padding_free = cfg.padding_free
    if padding_free is None:
        padding_free = (cfg.objective == "sft" and bf16 and cfg.attention == "auto" and longest <= cfg.max_length
                        and is_flash_attn_2_available() and getattr(meta, "_supports_flash_attn", False))
    if world_size() > 1:
        return fallback_plan(cfg.gradient_checkpointing, cfg.liger, "a distributed launch: ranks must agree"), \
            bool(padding_free)
    try:
        params = sum(p.numel() for p in meta.parameters())
        modules = dict(meta.named_modules())
        linears = [modules[n] for n in selected_linears(meta, cfg)]
        method = METHODS.get(cfg.method)
        extra = 0
        if method.artifact == "adapter":
            trainable = sum(cfg.method_options.lora_r * (m.in_features + m.out_features) for m in linears)
        elif method.artifact == "expert":  # SVF: one scale per singular value; fp32 U, V beside each weight
            trainable = sum(min(m.in_features, m.out_features) for m in linears)
            extra = sum(4 * min(m.in_features, m.out_features) * (m.in_features + m.out_features) for m in linears)
        elif cfg.target_modules == "all-linear" and not cfg.layers:  # full fine-tuning: every weight
            trainable = params
        else:  # full fine-tuning of the selected modules
            trainable = sum(m.in_features * m.out_features for m in linears)
        per_param = 0.5 if cfg.method == "qlora" else torch.finfo(pick_dtype(model_cfg.dtype, "cuda")).bits / 8
        if cfg.objective == "grpo":  # each completion of each prompt, prompt and budget; the synced bf16 copy
            rows = 1  # not split: GRPO's accumulation sets its generations
            row_tokens = cfg.grpo.group * cfg.grpo.prompts_per_step * (longest + cfg.grpo.max_completion_length)
            extra += params * 2
        else:
            rows, row_tokens = cfg.batch_size, longest if padding_free else min(longest, cfg.max_length)
        torch.cuda.empty_cache()  # this process's cached blocks are free to the step too
        device = int(os.environ.get("LOCAL_RANK", 0))
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        # GRPOTrainer takes no Liger setting from driftlab: planned without it
        liger_ok = _importable("liger_kernel") and cfg.objective == "sft"
        qk_norm = any(name.endswith((".q_norm", ".k_norm")) for name in modules)
        split = cfg.objective == "sft" and sums_over_passes(type(meta))
        plan = gpu_plan(Shape.from_config(config, params, qk_norm), rows, row_tokens, trainable, free, liger_ok,
                        cfg.gradient_checkpointing, cfg.liger if cfg.objective == "sft" else False, per_param, extra,
                        partial=cfg.objective == "sft", split=split, micro_batch=cfg.micro_batch,
                        cap=None if cfg.gpu_memory_gib is None else int(cfg.gpu_memory_gib * GIB))
    except Exception as err:
        plan = fallback_plan(cfg.gradient_checkpointing, cfg.liger, f"{type(err).__name__}: {err}")
    return plan, bool(padding_free)


def _longest_tokens(model: ResolvedModel, model_cfg: ModelConfig, train_set: list[dict]) -> int:
    """Tokens of the longest training row, rendered as the trainer will (chat template, prompt + completion)."""
    from driftlab.models import load_tokenizer

    tok = load_tokenizer(model)
    texts = []
    for item in train_set:
        row = to_conversation(item, model_cfg.system_prompt, model_cfg.enable_thinking)
        texts.append(tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=False,
                                             **row.get("chat_template_kwargs", {})))
    return max(len(ids) for ids in tok(texts, add_special_tokens=False).input_ids)


def _finish_distributed(grace_s: float = 60.0) -> None:
    """A distributed launch ends together: every rank waits until rank 0 has written the run dir, then the process
    group is torn down (left to interpreter exit, gloo's threads sometimes abort a rank: 'terminate called without
    an active exception', seen once in a 2-process CPU test run). gloo's teardown itself can hang now and then
    (pytorch/pytorch#75097; seen once here, on rank 1 after rank 0 had exited): a rank other than 0, which has
    nothing left to write, then leaves after `grace_s` instead of waiting forever."""
    import threading

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    done = threading.Event()

    def destroy() -> None:
        dist.destroy_process_group()
        done.set()

    threading.Thread(target=destroy, daemon=True).start()
    if not done.wait(grace_s) and not is_main_process():
        print(f"process-group teardown still waiting after {grace_s:.0f}s; this rank exits (rank 0 holds the run)",
              file=sys.stderr, flush=True)
        os._exit(0)


def _keyed(cfg: TrainConfig, target: SuiteConfig | None) -> dict:
    """The train config as the train cache keys it: a starting adapter by its weights (its path differs from run to
    run), and GRPO's reward rules (the target suite's scorer and extraction)."""
    from driftlab.artifacts import find_artifact
    from driftlab.models import fingerprint_dir

    # what is kept on disk, and how memory is saved (recompute, offload: the same arithmetic), not what is trained
    keyed = cfg.model_dump(mode="json", exclude={"keep_checkpoints", "gradient_checkpointing", "offload_activations",
                                                 "gpu_memory_gib", "micro_batch"})  # the chosen one: in choices
    if cfg.init_from:
        keyed["init_from"] = fingerprint_dir(find_artifact(Path(cfg.init_from)))
    if cfg.objective == "grpo" and target is not None:
        keyed["reward_suite"] = target.model_dump(mode="json")
    return keyed


def _start_adapter(lm, init_from: str, method):
    """The base with a fine-tune's PEFT adapter on it, trainable: training continues that adapter (RL after SFT)."""
    from peft import PeftModel

    from driftlab.artifacts import artifact_kind, find_artifact

    path = find_artifact(Path(init_from))
    if method.artifact != "adapter" or artifact_kind(path) != "adapter":
        raise DriftlabError(f"train.init_from={init_from}: continuing a fine-tune needs a PEFT adapter and an adapter "
                            f"method (lora, dora); got a {artifact_kind(path)} and method {method.name}")
    return PeftModel.from_pretrained(lm, str(path), is_trainable=True), None


def _resume_point(checkpoints: Path) -> Path:
    """The newest complete checkpoint. A kill -9 or a full disk during a checkpoint write leaves a newer one that HF
    Trainer would pick and fail on: it belongs to this run and holds nothing usable, so the main process removes it."""
    import shutil

    for ckpt in checkpoints_newest_first(checkpoints):
        if is_complete(ckpt):
            return ckpt
        if is_main_process():
            print(f"{ckpt} was cut short while being written: removed", file=sys.stderr)
            shutil.rmtree(ckpt)
    raise DriftlabError(f"{checkpoints.parent}: no complete checkpoint to resume from; start the run again instead")


def to_conversation(item: dict, system_prompt: str | None = None, enable_thinking: bool | None = None) -> dict:
    """An item as TRL's conversational prompt-completion record (loss on the completion only). The chat template
    sees the same system prompt and `enable_thinking` as at eval time (TRL reads per-row chat_template_kwargs)."""
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
    prompt.append({"role": "user", "content": item["prompt"]})
    record = {"prompt": prompt, "completion": [{"role": "assistant", "content": item["completion"]}]}
    if enable_thinking is not None:
        record["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
    return record


def _tensorboard(log_dir: Path, purge_step: int | None = None):
    """TensorBoard's own resume mechanism: events of steps >= purge_step already in log_dir are hidden."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    _after_existing_event_files(log_dir)
    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir), purge_step=purge_step))


def _after_existing_event_files(log_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order, and the purge only hides events of files read before
    the one that carries it. A file is named `events.out.tfevents.<unix second>.<host>.<pid>.<counter>`, so a
    resumed run whose file starts in the same second as the killed run's can sort first (counter "10" < "9"); the
    killed run's steps then reappear after the purge. Waiting for the next second makes the new file sort last."""
    stamps = (f.name.split(".")[3:4] for f in log_dir.glob("events.out.tfevents.*"))
    seconds = [int(s[0]) for s in stamps if s and s[0].isdigit()]
    if seconds:
        time.sleep(min(2.0, max(0.0, max(seconds) + 1 - time.time())))  # a file from a clock far ahead: no help


def _whole_run_loss(rows: list[dict], resume_step: int | None, this_call: float, steps: int) -> float:
    """The mean training loss of the whole run. HF's `training_loss` averages the steps of this `train()` call only,
    which after a resume leaves out the steps before the checkpoint; those come from the log the run kept, where
    each loss is the mean over the steps since the previous logged one (all of them at logging_steps 1)."""
    if not resume_step:
        return this_call
    before, last = 0.0, 0
    for r in rows:
        if "loss" in r and r["step"] <= resume_step:
            before, last = before + r["loss"] * (r["step"] - last), r["step"]
    return (before + this_call * (steps - resume_step)) / (last + steps - resume_step)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _param_count(model) -> int:
    """Parameters of the base model; a 4-bit bitsandbytes tensor packs two values per element (as PEFT counts)."""
    return sum(p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1) for p in model.parameters())


def _mean_tail(values: list[float], k: int = 5) -> float | None:
    tail = values[-k:]
    return sum(tail) / len(tail) if tail else None
