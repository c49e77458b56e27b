"""Issue 18: no network unless asked. A tiny study (train + eval + probes) runs in a fresh process whose sockets
refuse to connect or resolve; a hub id not in the local cache fails at once, naming how to allow downloads."""

import os
import subprocess
import sys
import time

import yaml

from tests.conftest import tiny_study_config

DENY = r"""
import os, socket, sys
def deny(*args, **kwargs):  # recorded, as a library may swallow the error (telemetry runs in a thread)
    with open(os.environ["NETLOG"], "a") as f:
        f.write(repr(args[1:] or args) + "\n")
    raise RuntimeError(f"driftlab opened the network: {args!r}")
socket.socket.connect = socket.socket.connect_ex = deny
socket.getaddrinfo = socket.create_connection = deny
from typer.testing import CliRunner
from driftlab.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(result.output[-3000:])
if result.exception and not isinstance(result.exception, SystemExit):
    import traceback; traceback.print_exception(result.exception)
sys.exit(result.exit_code)
"""


def _run(args, tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_", "DRIFTLAB_HUB"))}
    return subprocess.run([sys.executable, "-c", DENY, *args], capture_output=True, text=True, timeout=600,
                          env={**clean, "DRIFTLAB_HOME": str(tmp_path / "home"), "NETLOG": str(tmp_path / "net.log"),
                               **env})


def test_a_study_opens_no_socket(tmp_path, tiny_model_dir):
    cfg = tiny_study_config(tmp_path, tiny_model_dir)
    cfg["probes"] = {"run": ["faithfulness", "diversity", "drift", "shortcuts"], "limit": 4, "samples": 2,
                     "drift_prompts": 3, "drift_max_new_tokens": 4}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = _run(["study", "-c", str(tmp_path / "tiny.yaml")], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "net.log").exists(), (tmp_path / "net.log").read_text()[:2000]


def test_a_hub_id_not_in_the_cache_fails_at_once_without_the_network(tmp_path):
    t0 = time.perf_counter()
    proc = _run(["eval", "-m", "some-org/not-in-cache", "-c", "configs/default.yaml"], tmp_path)
    assert proc.returncode == 2 and "not in the local HF cache" in proc.stdout and "DRIFTLAB_HUB=1" in proc.stdout
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "net.log").exists()
