"""The layer table of the architecture page, read from where the order is declared (`LAYERS` in
`tests/test_layout.py`, which enforces it) and from each package's docstring."""

from __future__ import annotations

import ast
import io
import tokenize

from docs.gen.markdown import header
from docs.gen.results import ROOT


def declared() -> list[tuple[str, str]]:
    """(the packages of one layer, the comment beside them), bottom first, as `tests/test_layout.py` has them."""
    source = (ROOT / "tests" / "test_layout.py").read_text()
    node = next(
        n for n in ast.parse(source).body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "LAYERS"
    )
    comments = {
        t.start[0]: t.string.lstrip("#").strip()
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type == tokenize.COMMENT
    }
    return [(item.value, comments.get(item.lineno, "")) for item in node.value.elts]


def summary(package: str) -> str:
    """The first sentence of a package's docstring."""
    init = ROOT / "src" / "seqforge" / package.replace(".", "/") / "__init__.py"
    doc = (ast.get_docstring(ast.parse(init.read_text())) or "").replace("\n", " ")
    return doc.split(". ")[0].rstrip(".") + "." if doc else ""


def layer_table() -> str:
    lines = header("layer", "package", "what it holds")
    for level, (packages, comment) in reversed(list(enumerate(declared()))):
        for package in packages.split():
            lines.append(f"| {level} | `seqforge.{package}` | {summary(package) or comment} |")
    return "\n".join(lines) + "\n"
