"""The shape of the code, checked: loading and evaluation never import the training stage, and only eval/open.py
opens a backend behind the results store (one handle for the model under test, no repeated opening sequence)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "driftlab"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _calls(path: Path, name: str) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sum(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
               for n in ast.walk(tree))


def test_loading_and_later_stages_never_import_train():
    lower = [SRC / "models.py", SRC / "artifacts.py", SRC / "schema.py", SRC / "registry.py",
             *[p for d in ("data", "eval", "probes", "compare", "report") for p in (SRC / d).rglob("*.py")]]
    upward = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("driftlab.train"))
              for p in lower}
    assert not {k: v for k, v in upward.items() if v}


def test_only_eval_open_opens_a_backend_behind_the_store():
    sites = {str(p.relative_to(SRC)): _calls(p, "results_store") + _calls(p, "CachedBackend")
             for p in SRC.rglob("*.py")}
    assert {k: v for k, v in sites.items() if v} == {"eval/open.py": 2}
