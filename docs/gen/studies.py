"""The two studies' pages: the report each study writes (`reports/study/README.md`, `reports/study_long/README.md`,
from `metrics/study.json` and `metrics/study_long.json`), its plots copied beside the page."""

from __future__ import annotations

import re

from docs.gen import committed
from docs.gen.results import ROOT

STUDIES = {"study": "classic", "study_long": "long-range"}  # reports/<folder> -> docs/studies/<page>.md


def report(folder: str) -> str:
    """A study's report without its title, its plots pointing at `img/`, its links at the other study's page."""
    text = committed.read_text(ROOT / "reports" / folder / "README.md").split("\n", 1)[1].lstrip("\n")
    text = re.sub(r"!\[([^]]*)\]\(([\w.-]+\.png)\)", rf"![\1](img/{folder}-\2)", text)
    for other, page in STUDIES.items():
        text = text.replace(f"../{other}/README.md", f"{page}.md")
    return text.rstrip() + "\n"


def copy_plots() -> list[str]:
    """The studies' plots into docs/studies/img/ (a build input, not committed: they are in reports/)."""
    dest = ROOT / "docs" / "studies" / "img"
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for folder in STUDIES:
        for png in committed.files(f"reports/{folder}", "*.png"):
            (dest / f"{folder}-{png.name}").write_bytes(committed.read_bytes(png))
            copied.append(f"{folder}-{png.name}")
    return copied
