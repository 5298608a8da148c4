"""How listing commands print: a table a person reads, or `--json` for a script. A table never cuts a cell: on a
terminal long cells fold at its width; piped or redirected, the table is as wide as its longest row."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

AsJson = Annotated[bool, typer.Option("--json", help="print the rows as JSON (a list of objects) instead of a table")]
UNBOUNDED = 100_000  # a console width no table reaches: piped output is never wrapped or cut


def show(title: str, rows: list[dict], as_json: bool = False, data: list[dict] | None = None) -> None:
    """`rows` (every value as shown) as a table titled `title`, or `data` (default: `rows`) as JSON."""
    if as_json:
        typer.echo(json.dumps(rows if data is None else data, indent=2, ensure_ascii=False, default=str))
        return
    table = Table(title=title)
    for column in rows[0] if rows else ["none"]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console = Console() if sys.stdout.isatty() else Console(width=UNBOUNDED, soft_wrap=True)
    console.print(table)
