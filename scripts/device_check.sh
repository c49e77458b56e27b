#!/usr/bin/env bash
# One prepared run on a lent GPU (issue 21), within one `run` call of the device tool:
#   run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=595)
# or the two halves in two calls, each with the whole call's time: `... device_check.sh bench` (the benchmark, 560 s)
# and `... device_check.sh tests`. The benchmark writes its JSON after every run, so a cut-short call keeps what ran.
# Installs the carried wheels (scripts/device_wheels.sh made them here; .whl/tokenizer holds the embedded model's
# tokenizer files, the model itself being too large to carry), then, each with its own time limit so one overrun
# leaves the others' results: the GPU benchmark (the runs of issue 21's targets first: driftlab's defaults, TRL's
# defaults and TRL's best seen, driftlab's memory-saving setting, the HF eval backend on static slots compiled; then
# activation offloading, the whole batch in one pass, the memory-saving setting at one row a pass, dynamic batches:
# steady tokens/s, VRAM, MFU, tokens/s), and
# the test suite on CUDA (unit tests first), after a training pass's fixed cost at Qwen3-4B's widths. Everything
# lands in $OUT: gpu_throughput.json, bench.log, pass_overhead_real.json, pytest.log.
set -uo pipefail
MODE=${1:-both}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 DRIFTLAB_HOME=/tmp/driftlab-home TOKENIZERS_PARALLELISM=false
{ nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv; nproc; free -g | head -2
  python3 -c "import torch, transformers, trl, peft, liger_kernel, importlib.metadata as m
print(torch.__version__, transformers.__version__, trl.__version__, peft.__version__, m.version('liger-kernel'),
      torch.cuda.get_device_name())"; } > "$OUT/gpu.txt" 2>&1
if [ "$MODE" != tests ]; then
  # each run in a time limit (the H200 trained the 24 steps in 14-27 s, the process start and model load besides;
  # the compiled eval's compile time is unmeasured)
  timeout $([ "$MODE" = bench ] && echo 560 || echo 390) python3 benchmarks/gpu_throughput.py --steps 24 --warmup 8 \
    --train-limit-s 120 --eval-limit-s 200 --tokenizer .whl/tokenizer > "$OUT/bench.log" 2>&1
  echo "benchmark exit $?" >> "$OUT/bench.log"
  cp benchmarks/results/gpu_throughput.json "$OUT/" 2>/dev/null
  tail -4 "$OUT/bench.log"
  [ "$MODE" = bench ] && exit 0
fi
if [ "$MODE" = tests ]; then  # first, a training pass's fixed cost at Qwen3-4B's widths (what micro-batches repeat)
  timeout 100 python3 benchmarks/pass_overhead.py --real --iters 10 > "$OUT/pass_overhead.log" 2>&1
  cp benchmarks/results/pass_overhead_real.json "$OUT/" 2>/dev/null
fi
# the rest of the call for the tests: 8 workers (tiny models; one GPU is plenty), each module's tests on one worker;
# not the `integration` ones: they need the real bundled models (the embedded LM's 98 MB GGUF, the embedder's 83 MB),
# more than a call carries — `make test` (.ci/run) runs them on the CPU; so are the studies that run the diversity
# probe, which needs the embedder (deselected by name)
t=tests/integration
timeout $([ "$MODE" = tests ] && echo 440 || echo 150) python3 -m pytest -q -p no:cacheprovider --timeout 100 -n 8 --dist loadfile -m "not integration" \
  --deselect $t/test_offline.py::test_a_study_opens_no_socket \
  --deselect $t/test_tiny_study.py::test_tiny_study_end_to_end \
  --deselect $t/test_tiny_study.py::test_warm_rerun_loads_no_weights \
  --deselect $t/test_tiny_study.py::test_probe_command_on_a_model tests/unit tests/integration \
  > "$OUT/pytest.log" 2>&1
echo "pytest exit $?" >> "$OUT/pytest.log"
tail -25 "$OUT/pytest.log"
