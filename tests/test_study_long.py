"""The long-range study: the synthetic corpus format (deterministic, its lengths and splits as configured, pinned
like any corpus), its bad parameters, accuracy by length, the report's verdicts, and (slow, in CI) a smoke-size
run through `dvc repro studies/long/dvc.yaml` on Ray Train with MLflow."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from seqforge.config.base import ConfigError
from seqforge.corpora.fetch import FetchError, fetch_corpus, sha256
from seqforge.corpora.registry import load_corpus
from seqforge.corpora.synthetic import MARKER, SyntheticCfg, generate
from seqforge.research.study import accuracy_by_length, bucket_labels, vanishing_distance
from seqforge.research.study_config import load_study
from seqforge.research.study_long_report import claims

CFG = SyntheticCfg(min_length=5, max_length=60, vocab=7, splits={"train": 90, "validation": 12, "test": 30})


def test_generator_is_deterministic_and_gives_the_configured_rows() -> None:
    rows = generate(CFG, seed=3)
    assert rows == generate(CFG, seed=3) and rows != generate(CFG, seed=4)
    assert {split: len(r) for split, r in rows.items()} == {"train": 90, "validation": 12, "test": 30}
    assert generate(CFG.model_copy(update={"splits": {**CFG.splits, "train": 5}}), 3)["test"] == rows["test"]
    for i, (source, target) in enumerate(rows["train"]):
        task, *words = source.split()
        assert task == CFG.tasks[i % 3]
        symbols = [w for w in words if w != MARKER]
        assert CFG.min_length <= len(symbols) <= CFG.max_length
        assert set(symbols) <= {f"t{s}" for s in range(CFG.vocab)}
        if task == "copy":
            assert target.split() == symbols
        elif task == "reverse":
            assert target.split() == symbols[::-1]
        else:  # the token after the one marker, which sits in the first quarter
            at = words.index(MARKER)
            assert words.count(MARKER) == 1 and target == words[at + 1] and at <= max(1, len(symbols) // 4)
    lengths = [len(s.split()) - 1 for s, _ in rows["train"] if s.startswith("copy")]
    assert min(lengths) < 12 and max(lengths) > 30  # log-uniform: short and long rows both drawn


def test_shipped_corpus_is_generated_with_its_pinned_bytes(conf_copy, tmp_path) -> None:
    corpus = load_corpus("long_range", conf_copy)
    files = fetch_corpus(corpus, tmp_path / "long_range")
    assert {f.name: sha256(f) for f in files} == corpus.files
    assert fetch_corpus(corpus, tmp_path / "long_range") == files  # verified, kept
    changed = corpus.model_copy(update={"synthetic": {**corpus.synthetic, "vocab": 21}})
    with pytest.raises(FetchError) as err:
        fetch_corpus(changed, tmp_path / "other")
    assert "the parameters or the generator changed" in str(err.value) and "long_range.yaml" in str(err.value)


def test_fetch_generates_a_new_synthetic_corpus_and_pins_it_in_dvc(project) -> None:
    """A corpus file without pins: `seqforge fetch` writes it, prints the pins to record and adds its folder to
    data.dvc; pinned, the next fetch only verifies it."""
    import shutil
    import subprocess

    from typer.testing import CliRunner

    from seqforge.cli import app

    for group in ("tasks", "experiments", "tune"):
        shutil.rmtree(project / "conf" / group)
        (project / "conf" / group).mkdir()
    (project / "conf" / "corpora" / "tiny.yaml").write_text(
        yaml.safe_dump({"format": "synthetic", "languages": ["src", "tgt"], "synthetic": CFG.model_dump()})
    )
    (project / "conf" / "tasks" / "tiny.yaml").write_text(
        yaml.safe_dump({"kind": "translation", "corpus": "tiny", "src_lang": "src", "tgt_lang": "tgt"})
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, check=True, capture_output=True)
    first = CliRunner().invoke(app, ["fetch"])
    assert first.exit_code == 0, first.output
    assert "3 tiny files generated in data/tiny" in first.output and "pinned in data.dvc" in first.output
    pins = {p.name: sha256(p) for p in (project / "data" / "tiny").iterdir()}
    assert f"  test.tsv: {pins['test.tsv']}" in first.output
    assert [o["path"] for o in yaml.safe_load(Path("data.dvc").read_text())["outs"]] == ["data/tiny"]
    corpus = yaml.safe_load((project / "conf" / "corpora" / "tiny.yaml").read_text())
    (project / "conf" / "corpora" / "tiny.yaml").write_text(yaml.safe_dump({**corpus, "files": pins}))
    again = CliRunner().invoke(app, ["fetch"])
    assert (
        again.exit_code == 0 and "3 tiny files verified in data/tiny" in again.output and "pinned" not in again.output
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"min_length": 50, "max_length": 10},
            "synthetic: Value error, min_length (50) is greater than max_length (10)",
        ),
        ({"vocab": 0}, "synthetic: Value error, vocab: Input should be greater than or equal to 2"),
        ({"tasks": ["copy", "sort"]}, "synthetic: Value error, tasks.1: Input should be 'copy', 'reverse' or 'recall'"),
        ({"splits": {"train": 10, "validation": 0, "test": 5}}, "splits: validation needs at least one row"),
    ],
)
def test_bad_generator_parameters_name_the_file_and_key(conf_copy, change: dict, message: str) -> None:
    path = conf_copy / "corpora" / "long_range.yaml"
    corpus = yaml.safe_load(path.read_text())
    corpus["synthetic"] |= change
    path.write_text(yaml.safe_dump(corpus))
    with pytest.raises(ConfigError) as err:
        load_corpus("long_range", conf_copy)
    assert str(path) in str(err.value) and message in str(err.value)


def test_inputs_longer_than_a_models_positions_are_refused(conf_copy) -> None:
    path = conf_copy / "corpora" / "long_range.yaml"
    corpus = yaml.safe_load(path.read_text())
    corpus["synthetic"]["max_length"] = 600
    path.write_text(yaml.safe_dump(corpus))
    with pytest.raises(ConfigError) as err:
        load_study(conf_copy, "long")
    assert str(conf_copy / "study_long.yaml") in str(err.value)
    assert "models.transformer: model.max_positions 512 is shorter than the longest source" in str(err.value)


def test_shipped_long_study_moves_its_models_to_the_synthetic_task(conf_copy) -> None:
    study, plans = load_study(conf_copy, "long")
    assert study.length_metric == "accuracy" and {exp.task for exp, _ in plans.values()} == {"long_range"}
    sgd, free = plans["rnn_sgd_clip"][0].optim, plans["rnn_sgd_noclip"][0].optim
    assert (sgd.optimizer, sgd.clip_norm, free.optimizer, free.clip_norm) == ("sgd", 5.0, "sgd", None)
    assert plans["rnn_adamw_noclip"][0].optim.optimizer == "adamw"
    assert not plans["gru_bahdanau_unidirectional"][0].model.bidirectional


def test_accuracy_by_length_counts_symbols_per_sub_task() -> None:
    sources = ["copy t1 t2", "copy " + "t1 " * 30, "recall t1 mark t2 " + "t3 " * 9, "reverse t1 t2 t3"]
    refs = ["t1 t2", "t1 " * 30, "t2", "t3 t2 t1"]
    hyps = ["t1 t2", "t1 " * 29 + "t2", "t3", "t3 t2"]
    rows = {(r["task"], r["bucket"]): r for r in accuracy_by_length(sources, hyps, refs, [10, 25])}
    assert [r["sentences"] for r in rows.values()] == [1, 0, 1, 0, 1, 0, 1, 0, 0]
    assert rows["copy", "≤10"]["exact_match"] == 100 and rows["copy", ">25"]["exact_match"] == 0
    assert rows["copy", ">25"]["token_accuracy"] == pytest.approx(100 * 29 / 30, abs=0.01)
    assert rows["recall", "11–25"]["exact_match"] == 0  # 11 symbols: the marker is not one
    assert rows["reverse", "≤10"]["token_accuracy"] == pytest.approx(66.67, abs=0.01)
    assert math.isnan(rows["copy", "11–25"]["exact_match"])


def test_vanishing_distance_is_the_first_below_a_millionth() -> None:
    assert vanishing_distance([1.0, 1e-3, 1e-7, 1e-9]) == 2
    assert vanishing_distance([1.0, 0.5, 0.2]) is None


def _result(
    cell: str,
    attention: str,
    exact: dict[str, float],
    *,
    bidirectional: bool = True,
    optimizer: str = "adamw",
    clip: float | None = 5.0,
    arch: str = "rnn",
    vanish: int | None = None,
    max_norm: float = 1.0,
    nonfinite: int = 0,
    loss: float = 1.0,
) -> dict:
    labels = bucket_labels([10, 100])
    return {
        "model": {"arch": arch, "cell": cell, "attention": attention, "bidirectional": bidirectional, "hidden_dim": 64},
        "clip_norm": clip,
        "optimizer": optimizer,
        "lr": 1.0,
        "parameters": 1000,
        "updates": 2,
        "tokens_per_s": 100.0,
        "accuracy_by_length": [
            {
                "task": t,
                "bucket": b,
                "sentences": 10,
                "exact_match": exact[t] if b == labels[-1] else 100.0,
                "token_accuracy": 50.0,
            }
            for t in exact
            for b in labels
        ],
        "vanishing_distance": {"initialisation": vanish, "trained": vanish},
        "encoder_grad": {"initialisation": [1.0] * 50, "trained": [1.0] * 50},
        "grad_norm": {"max": max_norm, "nonfinite": nonfinite, "clip_rate": 0.5, "p99_max": max_norm},
        "train_loss": [[1, 3.0], [2, loss]],
    }


def test_claims_give_verdicts_from_the_numbers() -> None:
    def acc(copy: float, recall: float = 0.0) -> dict[str, float]:
        return {"copy": copy, "reverse": copy, "recall": recall}

    results = {
        "rnn_none": _result("rnn", "none", acc(0, 0), vanish=20),
        "gru_none": _result("gru", "none", acc(5, 60), vanish=None),
        "rnn_bahdanau": _result("rnn", "bahdanau", acc(40)),
        "gru_bahdanau": _result("gru", "bahdanau", acc(90)),
        "gru_bahdanau_unidirectional": _result("gru", "bahdanau", acc(88), bidirectional=False),
        "transformer": _result("", "", acc(30), arch="transformer", clip=1.0),
        "rnn_sgd_clip": _result("rnn", "none", acc(0), optimizer="sgd", max_norm=80.0, loss=2.0),
        "rnn_sgd_noclip": _result(
            "rnn", "none", acc(0), optimizer="sgd", clip=None, max_norm=1e4, nonfinite=3, loss=float("nan")
        ),
    }
    found = claims(results, bucket_labels([10, 100]))

    def claim(start: str) -> dict[str, str]:
        return claim_of(found, start)

    assert len(found) == 6
    assert claim("Attention frees the decoder")["verdict"] == "holds"
    assert claim("In a vanilla RNN the gradient vanishes")["verdict"] == "holds"
    assert claim("Gated cells remember a token")["verdict"] == "holds"
    assert (
        claim("Under plain SGD")["verdict"] == "holds"
        and "non-finite updates 3" in claim("Under plain SGD")["measured"]
    )
    assert claim("A bidirectional encoder helps")["verdict"] == "too close to call"
    assert claim("Self-attention relates")["verdict"] == "does not hold here"
    results["rnn_sgd_noclip"] |= {"grad_norm": {"max": 3.0, "nonfinite": 0, "clip_rate": 0.0, "p99_max": 3.0}}
    assert claim_of(claims(results, bucket_labels([10, 100])), "Under plain SGD")["verdict"] == "does not hold here"


def test_the_report_is_written_when_a_model_diverged(tmp_path) -> None:
    """Unclipped SGD goes NaN: its gradient curve and losses are not finite; the report still has every part."""
    from seqforge.research.study_long_report import write_report

    exact = {"copy": 0.0, "reverse": 0.0, "recall": 0.0}
    diverged = _result("rnn", "none", exact, optimizer="sgd", clip=None, nonfinite=9, loss=float("nan"))
    diverged["encoder_grad"] = {"initialisation": [1.0] * 50, "trained": [float("nan")] * 50}
    results = {
        "rnn_none": _result("rnn", "none", exact, vanish=20),
        "rnn_sgd_clip": _result("rnn", "none", exact, optimizer="sgd", max_norm=80.0),
        "rnn_sgd_noclip": diverged,
    }
    summary = {
        "study": "study-x",
        "parent_run_id": "r",
        "profile": "default",
        "task": "long_range",
        "parameter_budget": 1000,
        "train": {"max_time": "00:00:01:00", "num_workers": 2},
        "wall_seconds": 60.0,
        "length_buckets": bucket_labels([10, 100]),
        "models": results,
    }
    found = write_report(summary, tmp_path)
    assert claim_of(found, "Under plain SGD")["verdict"] == "holds"
    report = (tmp_path / "README.md").read_text()
    assert "| rnn_sgd_noclip |" in report and "non-finite updates 9" in report
    for name in ("accuracy_by_length.png", "encoder_gradients.png", "clipping.png", "encoder_gradients.csv"):
        assert (tmp_path / name).stat().st_size > 0


def claim_of(found: list[dict[str, str]], start: str) -> dict[str, str]:
    return next(c for c in found if c["claim"].startswith(start))


@pytest.mark.slow
def test_smoke_long_study_trains_measures_and_reports_through_dvc(smoke_data, tmp_path_factory) -> None:
    """Two models at smoke size (the mechanics, not the conclusions): the GRU with attention and the vanilla RNN
    under SGD without clipping, the study's contrast; `dvc repro studies/long/dvc.yaml` trains them on Ray Train
    (2 workers, a local Ray) on the synthetic task `smoke_data` generated and tokenized. (The Transformer's study
    path is the same code: a third model would add its training's minute to CI, not a new path.)"""
    from helpers import copy_repo, run

    smoke, env = smoke_data
    repo = copy_repo(smoke, tmp_path_factory.mktemp("study_long") / "seqforge")
    path = repo / "conf" / "study_long.yaml"
    study = yaml.safe_load(path.read_text())
    study["models"] = {k: v for k, v in study["models"].items() if k in ("gru_bahdanau", "rnn_sgd_noclip")}
    path.write_text(yaml.safe_dump(study, allow_unicode=True, sort_keys=False))
    run(["dvc", "repro", "studies/long/dvc.yaml"], repo, env)

    summary = json.loads((repo / "metrics" / "study_long.json").read_text())
    models = summary["models"]
    assert list(models) == ["gru_bahdanau", "rnn_sgd_noclip"] and summary["task"] == "long_range"
    for name, r in models.items():
        assert r["epochs"] >= 1 and r["updates"] > 0, name
        rows = r["accuracy_by_length"]
        assert {b["task"] for b in rows} == {"copy", "reverse", "recall"}
        assert sum(b["sentences"] for b in rows) == 300  # the smoke profile's test cap
        assert any(b["token_accuracy"] > 0 for b in rows)  # decoded, scored against the references
        assert len(r["encoder_grad"]["trained"]) > 100  # the probe reaches far back on the long rows
    sgd = models["rnn_sgd_noclip"]
    assert (sgd["optimizer"], sgd["clip_norm"]) == ("sgd", None) and sgd["grad_norm"]["updates"] == sgd["updates"]
    assert sgd["vanishing_distance"]["initialisation"] is not None  # no attention: it vanishes within the probe
    assert models["gru_bahdanau"]["vanishing_distance"]["initialisation"] is None
    report = (repo / "reports" / "study_long" / "README.md").read_text()
    assert "| rnn_sgd_noclip |" in report
    for plot in ("accuracy_by_length.png", "encoder_gradients.png", "accuracy_by_length.csv"):
        assert (repo / "reports" / "study_long" / plot).stat().st_size > 0
    assert "study_long" not in run(["dvc", "status", "studies/long/dvc.yaml"], repo, env).stdout
