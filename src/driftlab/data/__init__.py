"""Stage 1 — data: build train and eval items from reasoning-gym generators and user JSONL files."""

from driftlab.data.build import DataBundle, build_data

__all__ = ["DataBundle", "build_data"]
