"""The parts of a Markdown table that every generated block writes the same way."""

from __future__ import annotations


def header(*columns: str) -> list[str]:
    """A table's header row and the rule under it (`""`: a column without a heading)."""
    return ["|" + "|".join(f" {c} " if c else " " for c in columns) + "|", "|" + "---|" * len(columns)]


def cell(text: str) -> str:
    """Text for a table cell: its pipes escaped, on one line."""
    return text.replace("|", "\\|").replace("\n", " ")
