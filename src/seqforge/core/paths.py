"""Where each pipeline stage reads and writes, relative to the repository root (the cwd)."""

import os
import sys
from pathlib import Path

DATA = Path("data")  # raw corpora, pinned by data.dvc
ARTIFACTS = Path("artifacts")
MODELS = Path("models")
METRICS = Path("metrics")
REPORTS = Path("reports")
STATE = Path(".seqforge")  # this machine's measured step rates and saved training plans (not versioned)
DVC = str(Path(sys.executable).with_name("dvc"))  # this environment's dvc, with or without an activated venv


def raw_dir(corpus: str) -> Path:
    return DATA / corpus


def prepared_dir(task: str) -> Path:
    return ARTIFACTS / "prepared" / task


def tokenized_dir(task: str) -> Path:
    return ARTIFACTS / "tokenized" / task


def tokenizer_file(task: str) -> Path:
    return tokenized_dir(task) / "tokenizer.json"


def model_dir(experiment: str) -> Path:
    return MODELS / experiment


def metrics_file(experiment: str) -> Path:
    return METRICS / f"{experiment}.json"


def curves_file(experiment: str) -> Path:
    return METRICS / "curves" / f"{experiment}.csv"


def ray_storage(configured: str, kind: str) -> str:
    """Where Ray keeps checkpoints (`kind` ``train``) or sweep state (``tune``): `$SEQFORGE_RAY_STORAGE/<kind>`
    when set (the team stack's bucket, `s3://bucket/path?endpoint_override=...`), else `configured`; a
    local path is made absolute, as Ray wants."""
    if base := os.environ.get("SEQFORGE_RAY_STORAGE"):
        location, _, query = base.partition("?")
        return f"{location.rstrip('/')}/{kind}" + (f"?{query}" if query else "")
    return configured if "://" in configured else str(Path(configured).resolve())
