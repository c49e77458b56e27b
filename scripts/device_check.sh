#!/usr/bin/env bash
# One prepared run on a lent GPU (issue 21), within one `run` call of the device tool:
#   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=590)
# Installs the carried wheels (scripts/device_wheels.sh made them here), then, each with its own time limit so one
# overrun leaves the others' results: the GPU benchmark (driftlab defaults and memory-saving setting vs TRL defaults
# and TRL's best seen; steady tokens/s, VRAM, MFU; the HF eval backend), and the test suite on CUDA. Everything
# lands in $OUT: gpu_throughput.json, bench.log, pytest.log.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 DRIFTLAB_HOME=/tmp/driftlab-home
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, transformers, trl, peft; print(torch.__version__, transformers.__version__, trl.__version__,
peft.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu.txt" 2>&1
timeout 330 python3 benchmarks/gpu_throughput.py --steps 24 --warmup 8 > "$OUT/bench.log" 2>&1
cp benchmarks/results/gpu_throughput.json "$OUT/" 2>/dev/null
timeout 200 python3 -m pytest -q --timeout 120 -p no:cacheprovider tests/unit tests/integration/test_train_methods.py \
  > "$OUT/pytest.log" 2>&1
tail -3 "$OUT/bench.log" "$OUT/pytest.log"
