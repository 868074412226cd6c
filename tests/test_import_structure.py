"""The package's import structure: no cycles, no private names across modules, lazy imports only for
heavy optional dependencies.

The imports are read with ``ast`` (nothing is executed): module-level imports and the ones inside
functions, which Python runs later but which still close a cycle (they are how cycles hide). Imports
under ``if TYPE_CHECKING:`` are left out: they never run.

Every module is checked by every rule: there are no expected failures.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "bezkit"

# Heavy or optional third-party packages a function may import lazily, and where.
# ``None``: anywhere in the package; otherwise only in modules under the listed prefixes.
LAZY_IMPORTS_ALLOWED: dict[str, tuple[str, ...] | None] = {
    "sklearn": None,  # scikit-learn: the images extra
    "torchvision": None,  # optional image utilities
    "playwright": None,  # the real-browser test only
    "plotly": None,  # the notebooks extra
    "ipywidgets": None,  # the notebooks extra
    "anywidget": None,  # the notebooks extra
    "IPython": None,  # only present in a notebook kernel
    "matplotlib": ("bezkit.cli",),  # keeps `bezkit --help` fast; everywhere else at module level
    "distributed": ("bezkit.executor",),  # the dask extra: `bezkit experiment --scheduler`
    "torch_fidelity": ("bezkit.metrics.inception",),  # the fid extra (needs torchvision)
    "torchmetrics": ("bezkit.metrics.inception",),  # the fid extra (needs torchvision)
    # the GPU check imports its sections (and so POT) only after its preflight has checked that
    # every carried module imports (bezkit/bench/gpu.py)
    "bezkit": ("bezkit.bench.gpu",),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target: ``module`` (dotted, absolute), the imported ``names`` (empty
    for ``import module``), where it is (``line``), whether it sits inside a function and whether
    a comment on its line(s) says why."""

    module: str
    names: tuple[str, ...]
    line: int
    in_function: bool
    commented: bool


def module_name(path: Path, root: Path) -> str:
    """``root/a/b.py`` -> ``pkg.a.b``; ``root/a/__init__.py`` -> ``pkg.a`` (``pkg``: the root)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """Resolve ``from ..x import y`` relative to the importing module."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def read_imports(path: Path, name: str) -> list[Import]:
    """Every runtime import in the file, module-level and inside functions."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    comment_lines = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                last = child.end_lineno or child.lineno
                commented = any(n in comment_lines for n in range(child.lineno, last + 1))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(alias.name, (), child.lineno, in_function, commented))
            elif isinstance(child, ast.ImportFrom):
                target = _absolute(child.module, child.level, name, is_package)
                names = tuple(alias.name for alias in child.names)
                found.append(Import(target, names, child.lineno, in_function, commented))
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inner)

    visit(tree, False)
    return found


@dataclass(frozen=True)
class PackageImports:
    """The package's modules (name -> file), each one's imports, and the module -> module graph."""

    files: dict[str, Path]
    imports: dict[str, list[Import]]
    graph: dict[str, set[str]]


def scan_package(root: Path) -> PackageImports:
    """Read every ``.py`` file under ``root``; edges go to modules of the same package only.

    ``from pkg.a import b`` is an edge to ``pkg.a.b`` when that is a module, else to ``pkg.a``.
    """
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    imports = {name: read_imports(path, name) for name, path in files.items()}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, found in imports.items():
        for imp in found:
            targets = [f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in files]
            if imp.module in files and len(targets) < len(imp.names or (None,)):
                targets.append(imp.module)
            graph[name].update(t for t in targets if t != name)
    return PackageImports(files, imports, graph)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm),
    written as a closed path ``[a, b, ..., a]`` that really follows the graph's edges."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(component, graph) for component in components]


def _cycle_in(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest closed path through the component's first module (breadth-first search)."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    back = [v]  # v, its parent, ..., start
                    while back[-1] != start:
                        back.append(parent[back[-1]])
                    return [*reversed(back), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in its own component")  # pragma: no cover


def private_imports(imports: list[Import], importer: str, package: str) -> list[str]:
    """``module._name`` for every private name imported from another module of the package."""
    return [
        f"{imp.module}.{n} (line {imp.line})"
        for imp in imports
        if imp.module.split(".")[0] == package and imp.module != importer
        for n in imp.names
        if n.startswith("_") and not n.startswith("__")
    ]


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of names and attributes, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def private_attribute_uses(path: Path, importer: str, modules: set[str]) -> list[str]:
    """``module._name`` for every private attribute read through another module's object, as in
    ``import pkg.a as a; a._x`` or ``from pkg import a; a._x`` (names bound anywhere in a file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                bound[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, importer, path.name == "__init__.py")
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{base}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        chain = _dotted(node.value)
        if chain is None or node.attr.startswith("__"):
            continue
        head, _, rest = chain.partition(".")
        owner = ".".join(filter(None, [bound.get(head, ""), rest]))
        if head in bound and owner in modules and owner != importer:
            found.append(f"{owner}.{node.attr} (line {node.lineno})")
    return found


def lazy_imports_not_allowed(imports: list[Import], importer: str) -> list[str]:
    """Function-level imports that are not a heavy optional dependency allowed in this module, or
    that lack a comment on their line saying why they are lazy."""
    bad = []
    for imp in imports:
        if not imp.in_function:
            continue
        top = imp.module.split(".")[0]
        where = LAZY_IMPORTS_ALLOWED.get(top, ())
        allowed = top in LAZY_IMPORTS_ALLOWED and (
            where is None or any(importer.startswith(prefix) for prefix in where)
        )
        if not allowed:
            bad.append(f"{imp.module} (line {imp.line})")
        elif not imp.commented:
            bad.append(f"{imp.module} (line {imp.line}: no comment saying why it is lazy)")
    return bad


SCAN = scan_package(PACKAGE_ROOT)
CYCLES = find_cycles(SCAN.graph)


MODULES = sorted(SCAN.imports)


@pytest.mark.parametrize("module", MODULES)
def test_module_is_on_no_import_cycle(module: str) -> None:
    on = [" -> ".join(c) for c in CYCLES if module in c]
    assert not on, f"{module} is on an import cycle: {'; '.join(on)}"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_private_name_of_another(module: str) -> None:
    bad = private_imports(SCAN.imports[module], module, PACKAGE_ROOT.name)
    bad += private_attribute_uses(SCAN.files[module], module, set(SCAN.files))
    assert not bad, f"{module} imports private names of other modules: {', '.join(bad)}"


@pytest.mark.parametrize("module", MODULES)
def test_function_level_imports_only_for_heavy_optional_dependencies(module: str) -> None:
    bad = lazy_imports_not_allowed(SCAN.imports[module], module)
    assert not bad, (
        f"{module} imports inside functions what is not a heavy optional dependency "
        f"({', '.join(sorted(LAZY_IMPORTS_ALLOWED))}) or has no comment saying why: "
        f"{', '.join(bad)}; import at module level"
    )


def dynamic_imports(path: Path) -> list[str]:
    """``name (line n)`` for every call of ``importlib.import_module`` or ``__import__`` in the
    file, inside the function ``name`` (``<module>`` at module level): imports by a computed name,
    which the scan above cannot follow."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else where
            )
            if isinstance(child, ast.Call) and _dotted(child.func) in (
                "importlib.import_module",
                "import_module",
                "__import__",
            ):
                found.append(f"{where} (line {child.lineno})")
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_the_command_line_imports_a_subcommand_in_one_place_only() -> None:
    """``bezkit --help`` stays fast because ``bezkit.cli.load_subcommand`` imports a subcommand's
    module only when it runs; that is the command line's one import by name."""
    found = {
        name: calls
        for name, path in SCAN.files.items()
        if name.startswith("bezkit.cli") and (calls := dynamic_imports(path))
    }
    assert set(found) == {"bezkit.cli"}, f"imports by a computed name: {found}"
    assert [call.split(" ")[0] for call in found["bezkit.cli"]] == ["load_subcommand"]


def names_hiding_submodules(package_root: Path) -> list[str]:
    """``folder/name`` for every package whose ``__init__.py`` binds a name (a re-exported
    function, a class, a variable) that is also one of its submodules: after ``import pkg.name as
    m`` Python hands back the attribute, so ``m`` is the function, not the module."""
    hidden = []
    for init in sorted(package_root.rglob("__init__.py")):
        folder = init.parent
        package = ".".join(folder.relative_to(package_root.parent).parts)
        submodules = {p.stem for p in folder.glob("*.py") if p.name != "__init__.py"}
        submodules |= {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
        bound: set[str] = set()
        for node in ast.parse(init.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module != package:  # not the module itself
                bound |= {alias.asname or alias.name for alias in node.names}
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                bound |= {t.id for t in targets if isinstance(t, ast.Name)}
        hidden += [f"{package}.{name}" for name in sorted(bound & submodules)]
    return hidden


def test_no_submodule_is_hidden_by_a_name_its_package_binds() -> None:
    assert names_hiding_submodules(PACKAGE_ROOT) == []


def test_a_function_named_as_its_module_is_found(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "__init__.py": "from pkg.distill import distill\nfrom pkg import sub\n",
            "distill.py": "def distill(): ...\n",
            "sub/__init__.py": "",
        },
    )
    assert names_hiding_submodules(pkg) == ["pkg.distill"]


# --- the checker itself, on a small package written for the test -----------------------------


def _write_package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return pkg


def test_finds_a_cycle_closed_by_a_function_level_import(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "a.py": "from pkg.b import f\n",
            "b.py": "import pkg.c\ndef f():\n    return 1\n",
            "c.py": "def g():\n    from pkg import a\n    return a\n",
            "d.py": "from pkg.a import f\n",
        },
    )
    cycles = find_cycles(scan_package(pkg).graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_no_cycle_in_a_tree_and_type_checking_imports_are_ignored(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "a.py": "from pkg.b import f\n",
            "b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
                "def f():\n    return 1\n"
            ),
        },
    )
    assert find_cycles(scan_package(pkg).graph) == []


def test_relative_imports_resolve_against_the_importer(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "sub/__init__.py": "from .m import h\n",
            "sub/m.py": "from ..top import t\n",
            "top.py": "from .sub import m\n",
        },
    )
    graph = scan_package(pkg).graph
    assert graph["pkg.sub"] == {"pkg.sub.m"}
    assert graph["pkg.sub.m"] == {"pkg.top"}
    assert graph["pkg.top"] == {"pkg.sub.m"}
    assert find_cycles(graph) == [["pkg.sub.m", "pkg.top", "pkg.sub.m"]]


def test_private_and_lazy_import_rules(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "a.py": "_x = 1\n__all__ = []\n",
            "b.py": (
                "from pkg.a import _x, __all__\n"
                "def f():\n"
                "    import sklearn.datasets  # lazy: optional\n"
                "    import json\n"
                "    import plotly\n"
                "    return json\n"
            ),
            "c.py": (
                "import pkg.a\nimport pkg.a as m\nfrom pkg import a\n"
                "x = pkg.a._x\ny = m._x\nz = a._x\nw = a.__all__\n"
            ),
        },
    )
    scan = scan_package(pkg)
    assert private_imports(scan.imports["pkg.b"], "pkg.b", "pkg") == ["pkg.a._x (line 1)"]
    assert private_imports(scan.imports["pkg.a"], "pkg.a", "pkg") == []
    modules = set(scan.files)
    assert private_attribute_uses(scan.files["pkg.c"], "pkg.c", modules) == [
        "pkg.a._x (line 4)",
        "pkg.a._x (line 5)",
        "pkg.a._x (line 6)",
    ]
    assert private_attribute_uses(scan.files["pkg.a"], "pkg.a", modules) == []
    assert lazy_imports_not_allowed(scan.imports["pkg.b"], "pkg.b") == [
        "json (line 4)",
        "plotly (line 5: no comment saying why it is lazy)",
    ]


def test_dynamic_imports_are_found_with_their_function(tmp_path: Path) -> None:
    pkg = _write_package(
        tmp_path,
        {
            "a.py": (
                "import importlib\n"
                "m = __import__('json')\n"
                "def load(name):\n"
                "    return importlib.import_module(name)\n"
            ),
        },
    )
    assert dynamic_imports(pkg / "a.py") == ["<module> (line 2)", "load (line 4)"]
