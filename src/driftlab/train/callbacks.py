"""Training log: one JSON line per logging step (loss, learning rate, grad norm, tokens/s) in the run dir."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class JsonlLogCallback(TrainerCallback):
    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []
        self._last_time: float | None = None
        self._last_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen
        row = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
        for key in ("loss", "learning_rate", "grad_norm", "train_loss", "mean_token_accuracy", "entropy"):
            if key in logs:
                row[key] = logs[key]
        if self._last_time is not None and now > self._last_time and tokens > self._last_tokens:
            row["tokens_per_s"] = (tokens - self._last_tokens) / (now - self._last_time)
        row["tokens_seen"] = tokens
        self._last_time, self._last_tokens = now, tokens
        self.rows.append(row)
        # Appending one line is atomic enough for a log (a torn last line is skipped by readers).
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
