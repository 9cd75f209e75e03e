"""The layers of DESIGN.md hold: every import of every module (in-function ones too, found by
walking the syntax tree, not by importing) runs down the layers, never back up.

    cli/, web/        the faces
    services/         the operations
    engines/          where jobs run: may use state.db (the local engine queues there), config,
                      storage and the agent; never services/ or the faces
    agent/            runs on the nodes: storage (it ships logs through the Store), the job's
                      bundle; never state.db, engines/, services/ or the faces
    config/, storage/, state (state.py, reports.py): the foundation, importing no layer above
    shared modules (ids, errors, settings, private, procs, bundle, nodes, durations, log, output,
                      models):
                      importable from anywhere, importing only each other and the foundation

DESIGN.md lists storage above engines and the agent; the agent has to write through the Store,
so storage is foundation here, and the rule that matters is kept: nothing runs back up to
services/ or the faces, and the agent never reaches state.db.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "batchai_cli"
FACES = {"cli", "web", "__main__"}
FORBIDDEN = {
    "services": FACES,
    "engines": FACES | {"services"},
    "agent": FACES | {"services", "engines", "state", "reports"},
    "config": FACES | {"services", "engines", "agent", "state", "reports"},
    "storage": FACES | {"services", "engines", "agent", "state", "reports", "config"},
    "state": FACES | {"services", "engines", "agent", "config", "storage"},
    "reports": FACES | {"services", "engines", "agent", "config", "storage"},
    "emulators": FACES | {"services", "engines", "agent", "state", "reports"},
}
LEAVES = {"ids", "errors", "settings", "private", "procs", "bundle", "nodes", "durations", "log", "output", "models"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "batchai_cli"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every batchai_cli import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from batchai_cli import state` imports the module batchai_cli.state
            submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            found += [(node.lineno, name) for name in submodules or [node.module]]
    return [(line, name) for line, name in found if name.startswith("batchai_cli.")]


def _violations() -> list[str]:
    problems = []
    for module, path in sorted(MODULES.items()):
        layer = _layer(module)
        forbidden = FORBIDDEN.get(layer, set())
        if layer in LEAVES:
            forbidden = FACES | {"services", "engines", "agent", "state", "reports"}
        for line, target in _imports(path):
            if _layer(target) in forbidden:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    return problems


def test_no_import_runs_back_up_the_layers():
    assert _violations() == []


def test_the_walk_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The checker itself: an in-function import of services/ from the agent is caught."""
    fake = tmp_path / "batchai_cli"
    (fake / "agent").mkdir(parents=True)
    (fake / "services").mkdir()
    (fake / "agent" / "x.py").write_text("def f():\n    from batchai_cli.services import jobs\n")
    (fake / "services" / "jobs.py").write_text("")
    this = sys.modules[__name__]
    monkeypatch.setattr(this, "PACKAGE", fake)
    modules = {
        "batchai_cli.agent.x": fake / "agent" / "x.py",
        "batchai_cli.services.jobs": fake / "services" / "jobs.py",
    }
    monkeypatch.setattr(this, "MODULES", modules)
    assert _violations() == ["batchai_cli/agent/x.py:2: batchai_cli.agent.x imports batchai_cli.services.jobs"]


@pytest.mark.parametrize("module", ["batchai_cli.agent.node", "batchai_cli.engines.runner"])
def test_the_node_side_never_imports_the_state_store(module):
    """What runs on a Slurm node (the runner and the agent) does not even import state.py."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or current not in MODULES:
            continue
        seen.add(current)
        if current == "batchai_cli.engines.local_queue":
            continue  # the local engine's queue runs on the CLI's machine, never on a Slurm node
        todo += [target for _line, target in _imports(MODULES[current])]
    assert "batchai_cli.state" not in seen


def _top_level_imports(path: Path) -> set[str]:
    """The batchai_cli modules a file imports when it is loaded (module level; an import inside a
    function runs later, when called)."""
    found = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
            found |= submodules or {node.module}
    return {name for name in found if name in MODULES}


def _import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    graph = {module: sorted(_top_level_imports(path)) for module, path in modules.items()}
    cycles, done, path = [], set(), []

    def visit(module: str) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        path.append(module)
        for target in graph.get(module, []):
            if not module.startswith(target + "."):  # a module may load its own package first
                visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    return cycles


def test_no_modules_import_each_other_in_a_circle():
    """A circle works only in one import order (cli/cluster, cli/job and cli/job_file once needed a
    `# noqa: E402` for it); none is left."""
    assert _import_cycles(MODULES) == []
