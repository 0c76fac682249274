"""The pack's import layers hold and its modules import each other without cycles, read from the source.

Why a test: the layers are what keeps the pack usable in pieces. ``models/`` (the networks) must load
without the pipeline, the pipeline without ComfyUI or the runner, the node adapters without the
headless runner; and a cycle makes a module's behaviour depend on which module happens to be imported
first (a half-initialised module raises ``ImportError`` or ``AttributeError`` only in that order).
Nothing is imported here: every ``.py`` file of the pack is parsed, so the test is fast and also sees
imports inside functions, which run late and count as much as the ones at the top.

Layers, lowest first; a module may import its own layer and the ones below it, never one above:

    models  <  pipeline  <  nodes  <  the pack's root ``__init__``  <  runner

(the root ``__init__`` registers the node classes with ComfyUI, so importing it imports ``nodes``).

Packages: importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, but those implicit
edges are left out of the graph (otherwise a package whose ``__init__`` re-exports its submodules
would be in a cycle with every one of them). Explicit imports are all kept: a submodule that names its
own package (``from . import NAME``, where NAME is defined in the ``__init__``) gets an edge to the
``__init__``, so if that ``__init__`` imports the submodule back, directly or not, it is a cycle.
"""
from __future__ import annotations

import ast
import pathlib
from typing import Iterator

PACK_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The name the pack is imported under (run_workflow.load_pack); only used to name modules in messages.
PACKAGE = "mgld_vsr"
#: Folders of the repository that are not part of the importable pack.
NOT_PACK = {"tests", "benchmarks", "workflows", "examples", "example_workflows", "docs", "web"}
#: Top-level scripts beside the pack (they load it as a package, they are not in it).
SCRIPTS = {"run_workflow.py"}
#: Layer of each top-level part of the pack (``""``: the root ``__init__``); higher may import lower.
LAYERS = {"models": 0, "pipeline": 1, "nodes": 2, "": 3, "runner": 4}


def pack_modules(root: pathlib.Path = PACK_ROOT) -> dict[str, pathlib.Path]:
    """Module name (``mgld_vsr.nodes.host``; ``mgld_vsr`` for the root ``__init__``) -> its file."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in NOT_PACK or parts[0] in SCRIPTS or any(p.startswith(".") or p == "__pycache__" for p in parts):
            continue
        names = list(parts[:-1]) + ([] if parts[-1] == "__init__.py" else [parts[-1][:-3]])
        modules[".".join([PACKAGE, *names])] = path
    return modules


def imports_of(module: str, path: pathlib.Path, modules: dict) -> Iterator[tuple[str, int]]:
    """``(imported pack module, line)`` of every import statement in the file, nested ones included.

    ``from X import name`` is an edge to ``X.name`` when that is a module of the pack, else to ``X``.
    Absolute imports count when they name the pack; other absolute imports are third-party.
    """
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield _known(alias.name, modules), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                target = node.module
            else:
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield (submodule if submodule in modules else _known(target, modules)), node.lineno


def _known(name: str, modules: dict) -> str:
    """``name``, or the nearest enclosing module of the pack (``import a.b.Thing`` is not written, but be safe)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph(root: pathlib.Path = PACK_ROOT) -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """``(module -> modules it imports, (importer, imported) -> first line)`` over the pack."""
    modules = pack_modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    lines: dict[tuple[str, str], int] = {}
    for name, path in modules.items():
        for target, line in imports_of(name, path, modules):
            if target != name and target in modules:
                graph[name].add(target)
                lines.setdefault((name, target), line)
    return graph, lines


def layer(module: str) -> tuple[str, int]:
    """``(part, layer)`` of a module: ``nodes``, ``pipeline``, ... (``""`` for the root ``__init__``)."""
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else ""
    return part, LAYERS[part]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each one a set of import cycles).

    Tarjan's algorithm, written iteratively so that a deep import chain cannot hit Python's recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def a_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One concrete cycle through the component's first module, to show in the failure message."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to the start
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    return component


def _short(module: str) -> str:
    return module[len(PACKAGE) + 1:] if module.startswith(PACKAGE + ".") else f"{module} (the root __init__)"


# --------------------------------------------------------------------------------------------------


def test_the_scan_sees_the_whole_pack():
    """Guards the other tests against passing on an empty or partial scan."""
    graph, _ = import_graph()
    for expected in ("mgld_vsr", "mgld_vsr.models.vae", "mgld_vsr.pipeline.defaults", "mgld_vsr.nodes.host",
                     "mgld_vsr.runner.cli", "mgld_vsr.pipeline.video_io.reader"):
        assert expected in graph, f"{expected} was not found under {PACK_ROOT}"
    assert not [m for m in graph if m.split(".")[1:2] and m.split(".")[1] in NOT_PACK]
    assert "mgld_vsr.nodes.host" in graph["mgld_vsr.nodes.video"]  # a relative import was resolved
    assert "mgld_vsr.pipeline.video_io" in graph["mgld_vsr.nodes.video"]  # ``from ..pipeline import video_io``


def test_no_module_imports_a_layer_above_its_own():
    graph, lines = import_graph()
    unplaced = sorted(m for m in graph if (m.split(".")[1] if "." in m else "") not in LAYERS)
    assert not unplaced, f"modules outside the known layers (add their folder to LAYERS or NOT_PACK): {unplaced}"
    wrong = []
    for importer, targets in sorted(graph.items()):
        part, level = layer(importer)
        for target in sorted(targets):
            target_part, target_level = layer(target)
            if target_level > level:
                wrong.append(f"{_short(importer)} imports {_short(target)} (line {lines[importer, target]}): "
                             f"{part or 'the root __init__'} must not import {target_part or 'the root __init__'}")
    assert not wrong, "imports against the layers (models < pipeline < nodes < root __init__ < runner):\n" + \
        "\n".join(wrong)


def test_no_import_cycles():
    graph, lines = import_graph()
    cycles = []
    for component in strongly_connected(graph):
        cycle = a_cycle(component, graph)
        steps = " -> ".join(f"{_short(a)} (line {lines[a, b]})" for a, b in zip(cycle, cycle[1:]))
        cycles.append(f"{', '.join(map(_short, component))}: e.g. {steps} -> {_short(cycle[-1])}")
    assert not cycles, "import cycles among the pack's modules (in-function imports count):\n" + "\n".join(cycles)


def test_the_cycle_finder_finds_cycles(tmp_path):
    """The scan and the cycle search on a small made-up pack: a cycle through a package ``__init__`` that
    re-exports a submodule importing the package back, a lazy import, and a package that only re-exports."""
    files = {
        "__init__.py": "from .a import x\n",
        "a/__init__.py": "from .one import x\n",
        "a/one.py": "def x():\n    from .two import y\n    return y\n",
        "a/two.py": "from . import x as y\n",  # the package's x: a/__init__ -> one -> two -> a/__init__
        "b/__init__.py": "from .three import z\n",
        "b/three.py": "from ..a.one import x as z\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph, _ = import_graph(tmp_path)
    assert graph["mgld_vsr.a.two"] == {"mgld_vsr.a"} and graph["mgld_vsr.a.one"] == {"mgld_vsr.a.two"}
    assert strongly_connected(graph) == [["mgld_vsr.a", "mgld_vsr.a.one", "mgld_vsr.a.two"]]
    assert a_cycle(["mgld_vsr.a", "mgld_vsr.a.one", "mgld_vsr.a.two"], graph) == [
        "mgld_vsr.a", "mgld_vsr.a.one", "mgld_vsr.a.two", "mgld_vsr.a"]
