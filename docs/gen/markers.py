"""Blocks in Markdown files: `<!-- gen:NAME -->` ... `<!-- /gen:NAME -->`, found and rewritten in place."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

BLOCK = re.compile(r"(<!-- gen:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /gen:(?P=name) -->)", re.DOTALL)


def rendered(text: str, render: Callable[[str], str]) -> str:
    """`text` with every block's body replaced by `render(name)` (which ends with a newline)."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def block_names(text: str) -> list[str]:
    return [m.group("name") for m in BLOCK.finditer(text)]


def pages(root: Path) -> list[Path]:
    """The Markdown files that may hold blocks: README.md and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
