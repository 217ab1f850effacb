"""The code's layers: utils/ is a leaf that never imports models/ (checkpoint I/O and ultralytics interop live in
models/io/), and the project's modules import each other without a cycle, not even through an import inside a
function (the usual way a cycle is hidden)."""

import ast

from helpers import ROOT

PACKAGES = ("models", "utils", "classify", "data")


def imports(path):
    """The project modules a file imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from models import common`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return found


def module_files():
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    return files


def test_utils_never_imports_models():
    offenders = {p.name: sorted(m for m in imports(p) if m.startswith("models"))
                 for p in (ROOT / "utils").glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycle():
    files = module_files()
    graph = {m: {d for d in imports(p) if d in files and d != m} for m, p in files.items()}
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in graph[m]:
            assert state.get(d) != "open", f"import cycle: {' -> '.join(path[path.index(d):] + [d])}"
            if d not in state:
                visit(d)
        state[m] = "done"
        path.pop()

    for m in graph:
        if m not in state:
            visit(m)
    assert "models.io.checkpoints" in graph and "utils.cli" in graph["models.io.checkpoints"]  # the walk saw them
