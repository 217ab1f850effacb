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


MAX_FUNCTION_LINES = 80  # issue 21: a longer function is doing several jobs


def test_no_function_is_longer_than_80_lines():
    paths = [*module_files().values(), *ROOT.glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    long = {f"{p.relative_to(ROOT)}:{node.name}": node.end_lineno - node.lineno + 1
            for p in paths for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    assert long == {}


def test_no_command_imports_another_for_its_library():
    """classify/*.py are commands: what they share lives in models/ or utils/. Only classify/prune.py runs another
    command (classify/train.py's run(), the training it composes with)."""
    allowed = {"classify/prune.py": {"classify.train"}}
    found = {}
    for path in (ROOT / "classify").glob("*.py"):
        name = str(path.relative_to(ROOT))
        commands = {m for m in imports(path) if m.startswith("classify.") and m.count(".") == 1}
        if commands - allowed.get(name, set()):
            found[name] = sorted(commands - allowed.get(name, set()))
    assert found == {}
