"""`make gpu-check` cannot rot between the sessions that get a GPU: the same check, on the CPU at smoke size,
with the GPU profile's bf16-mixed precision, and with ray, mlflow and dvc unimportable (a lent GPU machine
has none of them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers import run

BLOCK = """import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "mlflow", "dvc"):
            raise ImportError(f"{name} is not on a GPU machine")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.slow
def test_the_gpu_check_runs_on_cpu_in_bf16_without_ray_mlflow_or_dvc(smoke_data, tmp_path: Path) -> None:
    repo, env = smoke_data
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCK)
    out = tmp_path / "out"
    run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--device",
            "cpu",
            "--profiles",
            "smoke",
            "--precision",
            "bf16-mixed",
            "--compile",
            "off",
            "--fit-minutes",
            "0.1",
            "--seconds",
            "0.3",
            "--batches",
            "3",
            "--decode-sentences",
            "32",
            "--experiments",
            "gru_bahdanau",
            "--minutes",
            "5",
            "--out",
            str(out),
        ],
        repo,
        {**env, "PYTHONPATH": f"{tmp_path / 'block'}:{repo / 'src'}"},
    )
    report = json.loads((out / "gpu_check.json").read_text())

    fit = report["fit"]
    assert "error" not in fit, fit
    assert fit["precision"] == "bf16-mixed" and fit["epochs"] >= 1 and fit["updates"] > 0
    assert len(fit["train_epoch_s"]) == len(fit["val_bleu"]) == fit["epochs"]
    assert set(fit["test"]) == {"greedy", "beam5", "beam5_bf16", "ct2_beam5_int8"}
    assert all(s["device"] == "cpu" and s["tokens_per_s"] > 0 for s in fit["test"].values())

    prof = report["profile"]
    assert "error" not in prof, prof
    assert [len(p) for p in prof["train_pass_ms"]] == [4, 4] and prof["train_top"] and prof["decode_top"]

    cells = report["train"]  # the fit and the profile took the Transformer; a cell takes the RNN family
    assert [(c["experiment"], c["profile"], c["compile"]) for c in cells] == [("gru_bahdanau", "smoke", False)]
    for cell in cells:
        assert "error" not in cell, cell
        assert cell["precision"] == "bf16-mixed" and cell["train_tokens_per_s"] > 0 and cell["steps"] >= 3
        assert cell["greedy_tokens_per_s"] > 0 and cell["beam5_tokens_per_s"] > 0
    assert "| gru_bahdanau | smoke | False |" in (out / "gpu_check.md").read_text()


def test_the_gpu_check_without_tokenized_data_says_what_to_run(tmp_path: Path) -> None:
    from helpers import ROOT

    proc = run(
        [sys.executable, "-m", "bench.gpu_check", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out")],
        ROOT,
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert proc.returncode != 0
    assert "dvc repro tokenize@translation" in proc.stderr and "Traceback" not in proc.stderr
