"""`data.dvc`: one DVC output per corpus (`data/<name>`), so each corpus is pinned, pulled and removed on its own
and a clone can add its own corpus without holding the built-in ones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from seqforge.core import paths
from seqforge.corpora.base import CorpusError

PIN_FILE = Path("data.dvc")


def _outs(pin_file: Path) -> list[dict]:
    return (yaml.safe_load(pin_file.read_text()) or {}).get("outs", []) if pin_file.is_file() else []


def _write(pin_file: Path, outs: list[dict]) -> None:
    pin_file.write_text(
        "# One DVC output per corpus in data/ (`seqforge corpus add` / `corpus remove` edit it).\n"
        + yaml.safe_dump({"outs": sorted(outs, key=lambda o: o["path"])}, sort_keys=False)
    )


def pin(corpus_dir: Path, pin_file: Path = PIN_FILE) -> str:
    """`dvc add` one corpus folder and record its output in `data.dvc` (other corpora's entries untouched)."""
    if not Path(".dvc").is_dir():
        return "not a DVC repository: not pinned"
    proc = subprocess.run([paths.DVC, "add", "-q", str(corpus_dir)], capture_output=True, text=True)
    single = corpus_dir.with_name(corpus_dir.name + ".dvc")
    if proc.returncode:
        single.unlink(missing_ok=True)
        raise CorpusError(f"dvc add {corpus_dir} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    if not single.is_file():  # pinned already: DVC updated its output in data.dvc itself
        return f"pinned again in {pin_file} (commit it with conf/; `dvc push` shares the data)"
    (out,) = yaml.safe_load(single.read_text())["outs"]
    single.unlink()
    subprocess.run(["git", "rm", "-q", "--cached", "--ignore-unmatch", str(single)], capture_output=True)  # autostage
    out["path"] = str(corpus_dir)
    _write(pin_file, [o for o in _outs(pin_file) if o["path"] != out["path"]] + [out])
    return f"pinned in {pin_file} (commit it with conf/; `dvc push` shares the data)"


def unpin(corpus_dir: Path, pin_file: Path = PIN_FILE) -> bool:
    """Drop a corpus's output from `data.dvc`; True when it was there."""
    outs = _outs(pin_file)
    kept = [o for o in outs if o["path"] != str(corpus_dir)]
    if len(kept) != len(outs):
        _write(pin_file, kept)
    return len(kept) != len(outs)


def pinned_md5(corpus_dir: Path, pin_file: Path = PIN_FILE) -> str:
    """The md5 `data.dvc` pins for one corpus folder (what `dvc checkout` restores), or `unknown`."""
    try:
        return next(str(o["md5"]) for o in _outs(pin_file) if o["path"] == str(corpus_dir))
    except (StopIteration, KeyError, OSError, yaml.YAMLError):
        return "unknown"
