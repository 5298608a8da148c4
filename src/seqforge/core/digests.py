"""What a folder of files is, byte for byte: each file's size and SHA-256, to tell later whether it is still that
(a registered model's files, a checkpoint that may have been cut short)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digests(folder: Path) -> dict[str, dict]:
    """`{"bytes": size, "sha256": hex}` of every file under `folder`, by its path relative to it."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        found[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": digest}
    return found


def differences(folder: Path, recorded: dict[str, dict]) -> list[str]:
    """How `folder` differs from what `file_digests` `recorded` of it: one phrase per file missing, cut short or
    grown, changed, or added; empty when it is what was recorded."""
    found = file_digests(folder)
    said = []
    for name in sorted(recorded.keys() | found.keys()):
        was, now = recorded.get(name), found.get(name)
        if was == now:
            continue
        if now is None:
            said.append(f"{name} missing")
        elif was is None:
            said.append(f"{name} added")
        elif now["bytes"] != was["bytes"]:
            said.append(f"{name}: {now['bytes']:,} of {was['bytes']:,} bytes")
        else:
            said.append(f"{name}: SHA-256 differs")
    return said
