"""Training callbacks: the run dir's JSONL log, and the guard that stops on a non-finite loss."""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path

from transformers import TrainerCallback

LOGGED = ("loss", "eval_loss", "learning_rate", "grad_norm", "train_loss", "mean_token_accuracy", "entropy",
          # GRPO: mean and spread of the summed reward, share of groups whose rewards were all equal (no signal),
          # completion lengths, share cut by the budget, KL to the reference (beta > 0)
          "reward", "reward_std", "frac_reward_zero_std", "kl", "completions/mean_length",
          "completions/clipped_ratio", "completions/mean_terminated_length")
LOGGED_PREFIXES = ("rewards/",)  # GRPO: rewards/<reward>/mean and /std, one per reward function


class JsonlLogCallback(TrainerCallback):
    """One JSON line per logging step: loss, eval loss, learning rate, grad norm, tokens/s, peak memory (and GPU
    utilisation on a GPU). Appends, so a resumed run continues the same log."""

    def __init__(self, path: Path, keep_until_step: int | None = None):
        """keep_until_step: a resumed run keeps the log of the steps its checkpoint covers and drops the rest
        (they are trained again), so the log and the summary describe one run without duplicate steps."""
        self.path = Path(path)
        self.rows: list[dict] = []
        if keep_until_step is not None and self.path.exists():
            from driftlab.runs import read_jsonl, write_jsonl

            self.rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= keep_until_step]
            write_jsonl(self.path, self.rows)
        self._last_time: float | None = None
        self._last_tokens = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last_time = time.perf_counter()
        self._last_tokens = self.start_tokens = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen
        row = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
        row.update({k: v for k, v in logs.items() if k in LOGGED or k.startswith(LOGGED_PREFIXES)})
        if self._last_time is not None and now > self._last_time and tokens > self._last_tokens:
            row["tokens_per_s"] = (tokens - self._last_tokens) / (now - self._last_time)
            self._last_time, self._last_tokens = now, tokens
        row["tokens_seen"] = tokens
        row.update(_memory())
        self.rows.append(row)
        # Appending one line is atomic enough for a log (a torn last line is skipped by readers).
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


class ProgressBarCallback(TrainerCallback):
    """One progress line for training: steps, ETA and the last loss (GRPO: reward). TRL's RichProgressCallback
    draws a panel with a status line ("Nothing to log yet ...") and a table of every logged key (total_flos
    included) under the bar; the numbers are in train_log.jsonl, the terminal needs the bar."""

    def __init__(self, label: str = "train"):
        self.label, self.progress, self.task = label, None, None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("steps"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                                 transient=False)
        self.progress.start()
        self.task = self.progress.add_task("", total=state.max_steps, completed=state.global_step, last="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        shown = [f"{k} {logs[k]:.3g}" for k in ("loss", "reward", "eval_loss") if isinstance(logs.get(k), (int, float))]
        if shown:
            self.progress.update(self.task, last=" · ".join(shown))

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class SnapshotCallback(TrainerCallback):
    """Keeps the fine-tune every `every` optimizer steps (train.probe_every) as `<dir>/step-<N>`, written whole or not
    at all (a temp dir renamed), for the curves over training time. `save(path)` writes the method's artifact; it is
    set once the trainer exists. A resumed run writes the steps after its checkpoint again (the same weights)."""

    def __init__(self, every: int, directory: Path):
        self.every, self.dir, self.save = every, Path(directory), None

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every or not state.is_world_process_zero or self.save is None:
            return
        from driftlab.runs import atomic_dir

        with atomic_dir(self.dir / f"step-{state.global_step:05d}", replace=True) as tmp:
            self.save(tmp)


class NonFiniteLossGuard(TrainerCallback):
    """A NaN/inf loss or gradient norm stops the run before the next checkpoint is written (a step can log a finite
    loss while its gradients, and so the weights it just updated, are already NaN); the caller turns `bad_step` into
    one clear error and names the newest checkpoint whose weights are finite (last_good_checkpoint)."""

    def __init__(self):
        self.bad_step: int | None = None
        self.bad_value: float | None = None
        self.bad_what: str = "loss"

    def on_log(self, args, state, control, logs=None, **kwargs):
        for what in ("loss", "grad_norm"):
            value = (logs or {}).get(what)
            if value is not None and not math.isfinite(value) and self.bad_step is None:
                self.bad_step, self.bad_value, self.bad_what = state.global_step, value, what
                control.should_training_stop = True
                control.should_save = False
        return control


def checkpoints_newest_first(checkpoints: Path) -> list[Path]:
    return sorted(checkpoints.glob("checkpoint-*"), key=lambda p: -int(p.name.split("-")[1]))


def is_complete(ckpt: Path) -> bool:
    """Whether a checkpoint was written to the end: HF Trainer writes trainer_state.json last (after the weights,
    optimizer, scheduler and RNG states), so a checkpoint a kill -9 or a full disk cut short lacks it or holds a
    torn one."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def last_good_checkpoint(checkpoints: Path) -> tuple[Path | None, list[str]]:
    """The newest checkpoint under `checkpoints` that is complete and whose saved weights (*.safetensors) are all
    finite, and the names of newer ones that are not (checked, not assumed: a checkpoint saved after a NaN update
    holds NaN weights)."""
    import torch
    from safetensors import safe_open

    def finite(ckpt: Path) -> bool:
        for file in ckpt.glob("*.safetensors"):
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    t = f.get_tensor(key)
                    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                        return False
        return True

    bad = []
    for ckpt in checkpoints_newest_first(checkpoints):
        if is_complete(ckpt) and finite(ckpt):
            return ckpt, bad
        bad.append(ckpt.name)
    return None, bad


def _memory() -> dict:
    import torch

    if torch.cuda.is_available():
        out = {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20}
        try:
            out["gpu_utilization"] = torch.cuda.utilization()  # needs pynvml; optional
        except Exception:
            pass
        return out
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
