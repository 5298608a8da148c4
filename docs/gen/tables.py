"""Tables kept as data beside the docs (`docs/tables/*.yaml`), each row tied to the tests that guard it: the bad
inputs and the one line each gets, the faults the pipeline survives. `guarded` says which rows a test does not
back up (a missing test, or a message the test does not assert)."""

from __future__ import annotations

import ast
import re

import yaml

from docs.gen.markdown import cell, header
from docs.gen.results import ROOT

TABLES = ROOT / "docs" / "tables"


def load(name: str) -> list[dict]:
    return yaml.safe_load((TABLES / f"{name}.yaml").read_text())


def bad_inputs() -> str:
    lines = header("#", "where", "bad input", "message (excerpt)", "test")
    lines += [
        f"| {i} | {r['where']} | {cell(r['input'])} | {cell(r['message'])} | `{r['test']}` |"
        for i, r in enumerate(load("bad_inputs"), 1)
    ]
    return "\n".join(lines) + "\n"


def faults() -> str:
    lines = header("fault", "what happens", "tests")
    lines += [
        f"| {cell(r['fault'])} | {cell(r['what happens'])} | {', '.join(f'`{t}`' for t in r['tests'])} |"
        for r in load("faults")
    ]
    return "\n".join(lines) + "\n"


def _test_source(node_id: str) -> tuple[ast.AST | None, str]:
    """The test function (with its decorators) a `path::name` id names, or the module for a bare path."""
    path, _, name = node_id.partition("::")
    module = ast.parse((ROOT / path).read_text())
    if not name:
        return module, path
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node, path
    return None, path


def _asserted(node: ast.AST, shortest: int = 12) -> list[str]:
    """The literal texts a test holds: its string constants cut at regex wildcards, regex escapes undone."""
    texts = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    pieces = [re.sub(r"\\(.)", r"\1", p) for t in texts for p in re.split(r"\.\*\??|\.\+|\\d\+|\[\^?[^]]*\][*+]?", t)]
    return [p.strip() for p in pieces if len(p.strip()) >= shortest]


def fragments(message: str, shortest: int = 10) -> list[str]:
    """The literal parts of a message excerpt: its code spans, cut at each ellipsis, at least `shortest` long."""
    parts = [p.strip() for span in re.findall(r"`([^`]+)`", message) for p in span.split("…")]
    return [p for p in parts if len(p) >= shortest]


def backed(message: str, node: ast.AST) -> bool:
    """Whether the test asserts part of the message: one of its literal texts and one of the message's
    fragments overlap (either holds the other). A message with no code span describes, and passes."""
    parts, held = fragments(message), _asserted(node)
    return not parts or any(h in p or p in h for p in parts for h in held)


def guarded() -> list[str]:
    """What the tables promise that no test backs up: a test that does not exist, or a message fragment the
    guarding test's source does not hold."""
    problems = []
    for i, row in enumerate(load("bad_inputs"), 1):
        node, path = _test_source(row["test"])
        if node is None:
            problems.append(f"bad input {i}: {row['test']} does not exist")
            continue
        if not backed(row["message"], node):
            problems.append(f"bad input {i}: {row['test']} asserts no part of {row['message']}")
    for row in load("faults"):
        problems += [
            f"fault {row['fault']!r}: {test} does not exist" for test in row["tests"] if _test_source(test)[0] is None
        ]
    return problems
