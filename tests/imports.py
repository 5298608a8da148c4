"""The first-party import graph, read from the source (no module is imported): which module imports which,
where in its file (module level, inside a function, under `if TYPE_CHECKING:`), and which heavy third-party
packages each module pulls in when imported. `tests/test_layout.py` checks the layers against it."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
FIRST_PARTY = {"seqforge": SRC, "pipelines": ROOT, "bench": ROOT}


@dataclass(frozen=True)
class Import:
    """One first-party import: `source` imports `target` (the most specific module the statement names)."""

    source: str
    target: str
    where: str  # "module" (runs on import), "function" (runs when called) or "type" (under TYPE_CHECKING)
    line: int


def module_file(name: str) -> Path | None:
    """The file of a first-party module (`seqforge.x.y`, `pipelines.x`, `bench.x`), or None."""
    base = FIRST_PARTY.get(name.split(".")[0])
    if base is None:
        return None
    path = base.joinpath(*name.split("."))
    if path.is_dir() and (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def module_name(path: Path) -> str:
    base = SRC if SRC in path.parents else ROOT
    return ".".join(path.relative_to(base).with_suffix("").parts).removesuffix(".__init__")


def package_modules(package: str) -> list[str]:
    """Every module of a first-party package, the package itself included."""
    root = module_file(package).parent
    return sorted(module_name(p) for p in root.rglob("*.py"))


def parents(name: str) -> list[str]:
    """`a.b.c` -> [a, a.b]: the packages whose `__init__` runs before `a.b.c` does."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _resolve(name: str) -> str | None:
    """The most specific first-party module a dotted name reaches (`seqforge.x.y.Class` -> `seqforge.x.y`)."""
    while name:
        if module_file(name):
            return name
        name = name.rpartition(".")[0]
    return None


def _statements(tree: ast.Module):
    """(import statement, where) for every import in a module."""

    def walk(node: ast.AST, where: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    yield from walk_one(stmt, "type")
                for stmt in child.orelse:
                    yield from walk_one(stmt, where)
                continue
            yield from walk_one(child, where)

    def walk_one(node: ast.AST, where: str):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, where
        inner = "function" if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) else where
        yield from walk(node, inner if where == "module" else where)

    yield from walk(tree, "module")


@cache
def _parsed(name: str) -> tuple[list[Import], frozenset[str]]:
    """A module's first-party imports, and the third-party top-level packages it imports at module level."""
    path = module_file(name)
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    third_party: set[str] = set()
    for node, where in _statements(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        targets = {t for n in names if (t := _resolve(n))}
        for target in targets:
            if target != name and not any(o != target and o.startswith(target + ".") for o in targets):
                found.append(Import(name, target, where, node.lineno))
        if where == "module" and not targets:
            third_party |= {n.split(".")[0] for n in names if n}
    for node in ast.walk(tree):  # a registry package's `import_all(__name__, __path__)` imports all it holds
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "import_all":
            found += [
                Import(name, m, "module", node.lineno)
                for m in package_modules(name)
                if m.count(".") == name.count(".") + 1
            ]
    return found, frozenset(third_party)


def imports(name: str) -> list[Import]:
    """What module `name` imports (first-party)."""
    return _parsed(name)[0]


def runs_on_import(name: str, kinds: tuple[str, ...] = ("module",)) -> set[str]:
    """Every first-party module that `import name` executes (module-level imports, packages' `__init__`); with
    `kinds=("module", "function")`, also what its functions import when they run."""
    seen: set[str] = set()
    todo = [*parents(name), name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for imp in imports(current):
            if imp.where in kinds:
                todo += [*parents(imp.target), imp.target]
    return seen


def heavy_packages(name: str, heavy: frozenset[str]) -> set[str]:
    """The `heavy` third-party packages that `import name` loads."""
    return {pkg for module in runs_on_import(name) for pkg in _parsed(module)[1] & heavy}


def graph(modules: list[str]) -> dict[str, set[str]]:
    """Which module's import runs which other module first, whatever kind of import: a module -> each module it
    names, and the `__init__` of each package above that one which is not also above the importer (those have
    run already), and a registry package -> every module it holds."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module in modules:
        own = set(parents(module))
        for imp in imports(module):
            edges[module] |= {imp.target, *(p for p in parents(imp.target) if p not in own)}
    return {m: {t for t in targets if t in edges and t != m} for m, targets in edges.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(edges[node]):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found
