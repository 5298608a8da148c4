"""`python -m docs.gen [--check]`: rewrite every generated block of README.md and docs/, and copy the studies'
plots beside their pages (what `mkdocs build` needs); with `--check`, rewrite no page and exit 1 naming each
page whose blocks differ from what their inputs give."""

from __future__ import annotations

import sys

from docs.gen.blocks import render
from docs.gen.markers import block_names, pages, rendered
from docs.gen.results import ROOT
from docs.gen.studies import copy_plots


def stale() -> list[str]:
    """The pages whose blocks differ from what their inputs give now."""
    return [str(p.relative_to(ROOT)) for p in pages(ROOT) if p.read_text() != rendered(p.read_text(), render)]


def main(argv: list[str]) -> int:
    copy_plots()
    if "--check" in argv:
        differ = stale()
        for page in differ:
            print(f"{page}: a generated block differs from its inputs (run `make docs`)", file=sys.stderr)
        return 1 if differ else 0
    for page in pages(ROOT):
        text = page.read_text()
        if block_names(text) and (new := rendered(text, render)) != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
