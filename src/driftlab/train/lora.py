"""Stage 2 — train: LoRA fine-tuning with TRL's SFTTrainer and PEFT, loss on the assistant completion only.

Recipe: turn items into TRL prompt-completion conversations, pick device-appropriate precision settings, build an
SFTConfig + LoraConfig, train with a callback that logs to the run dir, save the adapter and a train.json summary.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from driftlab.config import ModelConfig, TrainConfig
from driftlab.models import ResolvedModel, load_pretrained, pick_device
from driftlab.runs import write_json
from driftlab.train.callbacks import JsonlLogCallback


def train_lora(model: ResolvedModel, model_cfg: ModelConfig, train_cfg: TrainConfig, items: list[dict],
               out_dir: Path, seed: int = 0) -> dict:
    """Fine-tune `model` on `items`; writes checkpoints/, adapter/, train_log.jsonl and train.json into out_dir."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    device = pick_device(model_cfg.device)
    on_gpu = device == "cuda"
    lm, tokenizer = load_pretrained(model, model_cfg.dtype, device)  # the Trainer moves it to the device

    dataset = Dataset.from_list([to_conversation(it, model_cfg.system_prompt, model_cfg.enable_thinking)
                                 for it in items])
    checkpointing = train_cfg.gradient_checkpointing if train_cfg.gradient_checkpointing is not None else on_gpu
    bf16 = train_cfg.bf16 if train_cfg.bf16 is not None else bool(on_gpu and torch.cuda.is_bf16_supported())
    # TRL's SFTConfig defaults (bf16=True, gradient_checkpointing=True) suit a GPU; on a CPU without bf16 hardware
    # they made a run ~18x slower, so every precision/memory knob is set explicitly from the device.
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=train_cfg.batch_size,
        gradient_accumulation_steps=train_cfg.grad_accum,
        learning_rate=train_cfg.learning_rate,
        lr_scheduler_type=train_cfg.lr_scheduler,
        warmup_steps=train_cfg.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
        weight_decay=train_cfg.weight_decay,
        num_train_epochs=train_cfg.epochs,
        max_steps=train_cfg.max_steps,
        max_length=train_cfg.max_length,
        bf16=bf16,
        fp16=False,
        # transformers 5 renamed gradient_checkpointing; TRL's default (True) applies only when this is unset.
        activation_checkpointing=checkpointing,
        use_cpu=not on_gpu,
        completion_only_loss=True,
        logging_steps=train_cfg.logging_steps,
        save_strategy="steps",
        save_steps=train_cfg.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
    )
    lora = LoraConfig(r=train_cfg.lora_r, lora_alpha=train_cfg.lora_alpha, lora_dropout=train_cfg.lora_dropout,
                      target_modules=train_cfg.target_modules, task_type="CAUSAL_LM", bias="none")
    log_cb = JsonlLogCallback(out_dir / "train_log.jsonl")
    trainer = SFTTrainer(model=lm, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora,
                         callbacks=[log_cb])
    trainable, total = _count_params(trainer.model)

    t0 = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - t0

    adapter_dir = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    losses = [r["loss"] for r in log_cb.rows if "loss" in r]
    tokens = trainer.state.num_input_tokens_seen
    summary = {
        "method": train_cfg.method,
        "base_model": model.name,
        "base_fingerprint": model.fingerprint,
        "adapter": str(adapter_dir),
        "device": device,
        "bf16": bf16,
        "gradient_checkpointing": bool(trainer.args.activation_checkpointing),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": trainable / total,
        "train_items": len(items),
        "steps": trainer.state.global_step,
        "tokens": tokens,
        "tokens_per_s": tokens / wall if wall else 0.0,
        "wall_s": wall,
        "first_loss": losses[0] if losses else None,
        "final_loss": _mean_tail(losses),
        "train_loss": result.training_loss,
        "config": train_cfg.model_dump(),
    }
    if summary["final_loss"] is not None and not math.isfinite(summary["final_loss"]):
        raise RuntimeError(f"training diverged: final loss {summary['final_loss']}")
    write_json(out_dir / "train.json", summary)
    return summary


def to_conversation(item: dict, system_prompt: str | None = None, enable_thinking: bool | None = None) -> dict:
    """An item as TRL's conversational prompt-completion record (loss on the completion only). The chat template
    sees the same system prompt and `enable_thinking` as at eval time (TRL reads per-row chat_template_kwargs)."""
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
    prompt.append({"role": "user", "content": item["prompt"]})
    record = {"prompt": prompt, "completion": [{"role": "assistant", "content": item["completion"]}]}
    if enable_thinking is not None:
        record["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
    return record


def _count_params(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _mean_tail(values: list[float], k: int = 5) -> float | None:
    tail = values[-k:]
    return sum(tail) / len(tail) if tail else None
