"""The classic-claims study: its configuration, sizing, length buckets, claims, and (slow) a smoke-size run
through `dvc repro studies/dvc.yaml` on Ray Train with MLflow."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from seqforge.config.base import ConfigError
from seqforge.models.registry import build_model, count_parameters, family
from seqforge.research.study import bleu_by_length, bucket_labels, sized
from seqforge.research.study_config import load_study
from seqforge.research.study_report import claims

VOCAB = (6000, 6000)  # the default profile's joint vocabulary


def test_shipped_study_sizes_every_model_to_the_budget(conf_copy) -> None:
    study, plans = load_study(conf_copy)  # on the default profile, whatever the checkout's
    assert {"rnn_none", "lstm_none", "gru_none", "rnn_bahdanau_noclip", "transformer"} <= set(plans)
    for name, (exp, train) in plans.items():
        model = sized(
            exp,
            study.models[name].width or family(exp.model.arch).width,
            study.parameter_budget,
            study.width_step,
            VOCAB,
        ).model
        assert abs(count_parameters(build_model(model, *VOCAB)) / study.parameter_budget - 1) < 0.05, name
        assert train.max_time == study.train["max_time"] and train.checkpoint_every_n_steps is None
    assert plans["rnn_none"][0].model.attention == "none" and plans["rnn_none"][0].model.cell == "rnn"
    assert plans["rnn_bahdanau_noclip"][0].optim.clip_norm is None
    assert plans["rnn_bahdanau"][0].optim.clip_norm is not None
    assert not plans["gru_bahdanau_unidirectional"][0].model.bidirectional
    assert plans["transformer"][0].model.arch == "transformer"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"length_buckets": [15, 10]}, "length_buckets: Value error, positive, strictly rising lengths (got [15, 10])"),
        ({"models": {"bad": {"set": {"model.cel": "lstm"}}}}, "models.bad"),
        ({"models": {"bad": {"set": {"model.attention": "none"}}}}, "input_feeding"),
        (
            {"models": {"bad": {"base": "chatbot_gru_bahdanau"}}},
            "models.bad.base: experiment 'chatbot_gru_bahdanau' is for task",
        ),
        ({"parameter_budget": 10}, "parameter_budget"),
    ],
)
def test_invalid_study_values_name_the_file_and_key(conf_copy, change: dict, message: str) -> None:
    path = conf_copy / "study.yaml"
    study = yaml.safe_load(path.read_text())
    for key, value in change.items():
        study[key] = {**study[key], **value} if key == "models" else value
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(ConfigError) as err:
        load_study(conf_copy)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bleu_by_length_puts_each_sentence_in_its_bucket() -> None:
    sources = ["a " * 3, "a " * 10, "a " * 11, "a " * 30]
    refs = ["das ist ein guter tag", "das ist sehr gut", "ein hund läuft über die wiese", "eine katze"]
    hyps = ["das ist ein guter tag", "xx yy zz", "ein hund läuft über die wiese", "eine katze"]
    rows = bleu_by_length([s.strip() for s in sources], hyps, refs, [10, 15, 20, 25], "words", "13a")
    assert [r["bucket"] for r in rows] == bucket_labels([10, 15, 20, 25]) == ["≤10", "11–15", "16–20", "21–25", ">25"]
    assert [r["sentences"] for r in rows] == [2, 1, 0, 0, 1]
    assert rows[1]["bleu"] == 100.0 and 0 < rows[0]["bleu"] < 100 and math.isnan(rows[2]["bleu"])


def _result(
    cell: str | None,
    attention: str = "bahdanau",
    bidirectional: bool = True,
    clip: float | None = 5.0,
    bleu: float = 20.0,
    decay: float = 0.5,
    buckets: tuple = (20, 20, 20, 20, 20),
    arch: str = "rnn",
    tokens: float = 5000,
) -> dict:
    model = {"arch": arch, "cell": cell, "attention": attention, "bidirectional": bidirectional, "hidden_dim": 64}
    return {
        "model": model,
        "clip_norm": clip,
        "parameters": 1000,
        "tokens_per_s": tokens,
        "test": {"bleu": bleu},
        "decay": {"initialisation": decay, "trained": decay},
        "val_loss": [3.0],
        "grad_norm": {"max": 3.0, "nonfinite": 0, "clip_rate": 0.0},
        "bleu_by_length": [{"bucket": str(i), "sentences": 10, "bleu": b} for i, b in enumerate(buckets)],
    }


def test_claims_give_verdicts_from_the_numbers_and_skip_what_was_not_trained() -> None:
    results = {
        "rnn_none": _result("rnn", "none", bleu=5, decay=1e-9, buckets=(10, 8, 6, 4, 2)),
        "lstm_none": _result("lstm", "none", bleu=9, decay=1e-3, buckets=(14, 12, 10, 8, 6)),
        "gru_none": _result("gru", "none", bleu=10, decay=1e-2, buckets=(15, 12, 10, 8, 6)),
        "rnn_att": _result("rnn", bleu=12, decay=0.8, buckets=(13, 12, 12, 11, 11)),
        "lstm_att": _result("lstm", bleu=20, decay=0.9, buckets=(22, 20, 19, 18, 17)),
        "gru_att": _result("gru", bleu=19.8, decay=0.9, buckets=(22, 20, 19, 18, 17), tokens=6000),
    }

    def verdict(start: str) -> str | None:
        return next((c["verdict"] for c in claims(results) if c["claim"].startswith(start)), None)

    assert verdict("A vanilla RNN's gradient vanishes") == "holds"
    assert verdict("LSTM and GRU translate better") == "holds"
    assert verdict("The GRU is a lighter LSTM") == "holds"
    assert verdict("Without attention the source is squeezed") == "holds"
    assert verdict("Attention gives every source position") == "holds"
    for untrained in ("A bidirectional", "The Transformer", "A vanilla RNN's gradients explode"):
        assert verdict(untrained) is None  # no such models: no verdict
    results["rnn_none"]["decay"]["trained"] = 0.5  # the data disagree: the verdict says so
    results["gru_att"]["test"]["bleu"] = 15.0
    assert verdict("A vanilla RNN's gradient vanishes") == "mixed: at initialisation only"
    results["rnn_none"]["decay"]["initialisation"] = 0.5
    assert verdict("A vanilla RNN's gradient vanishes") == "does not hold here"
    assert verdict("The GRU is a lighter LSTM") == "does not hold here"


@pytest.mark.slow
@pytest.mark.nightly
def test_smoke_study_trains_measures_and_reports_through_dvc(smoke_repo, tmp_path_factory) -> None:
    """Four models at smoke size (the mechanics, not the conclusions): plain and attentive vanilla RNNs,
    one without clipping, a Transformer; `dvc repro studies/dvc.yaml` trains them on Ray Train (2 workers)."""
    import sys

    from helpers import copy_repo, run

    smoke, env = smoke_repo
    repo = copy_repo(smoke, tmp_path_factory.mktemp("study") / "seqforge", "runs")
    path = repo / "conf" / "study.yaml"
    study = yaml.safe_load(path.read_text())
    study["models"] = {
        k: v
        for k, v in study["models"].items()
        if k in ("rnn_none", "rnn_bahdanau", "rnn_bahdanau_noclip", "transformer")
    }
    path.write_text(yaml.safe_dump(study, allow_unicode=True, sort_keys=False))
    run(["dvc", "repro", "studies/dvc.yaml"], repo, env)

    summary = json.loads((repo / "metrics" / "study.json").read_text())
    models = summary["models"]
    assert list(models) == ["rnn_none", "rnn_bahdanau", "rnn_bahdanau_noclip", "transformer"]
    budget = summary["parameter_budget"]
    for name, r in models.items():
        assert abs(r["parameters"] / budget - 1) < 0.15, name
        assert r["epochs"] >= 1 and r["updates"] > 0 and r["tokens_per_s"] > 0
        assert r["test"]["chrf"] > 0 and r["test"]["hyp_ref_len_ratio"] > 0  # non-empty outputs, scored
        assert sum(b["sentences"] for b in r["bleu_by_length"]) == 300  # the smoke test split
        assert len(r["encoder_grad"]["initialisation"]) == len(r["encoder_grad"]["trained"]) > 5
        assert r["grad_norm"]["updates"] == r["updates"] and r["train_loss"]
    # without attention only the recurrence carries the gradient back: it fades over ~20 steps
    assert models["rnn_none"]["decay"]["initialisation"] < 1e-3 < models["rnn_bahdanau"]["decay"]["initialisation"]
    assert models["rnn_bahdanau_noclip"]["clip_norm"] is None

    report = (repo / "reports" / "study" / "README.md").read_text()
    # these four models can test four claims (attention and length, the gradient path, clipping, the
    # Transformer); the others need an LSTM, a GRU or a unidirectional encoder and are skipped
    assert len(summary["claims"]) == 4, [c["claim"] for c in summary["claims"]]
    for claim in summary["claims"]:
        assert claim["claim"] in report and claim["measured"] in report
        assert claim["verdict"].startswith(("holds", "does not hold here", "mixed", "too close to call"))
    path_claim = next(c for c in summary["claims"] if "short gradient path" in c["claim"])
    assert path_claim["verdict"] == "holds", path_claim  # attention vs none: orders of magnitude, even untrained
    for plot in ("encoder_gradients.png", "bleu_by_length.png", "clipping.png", "clipping_loss.csv"):
        assert (repo / "reports" / "study" / plot).stat().st_size > 0

    check = """
import json, sys, mlflow
client = mlflow.MlflowClient('sqlite:///mlflow.db')
parent = client.get_run(sys.argv[1])
exp = parent.info.experiment_id
children = client.search_runs([exp], f"tags.mlflow.parentRunId = '{sys.argv[1]}'")
print(json.dumps({'parent': parent.info.status, 'children': {r.data.tags['study_model']: {
    'status': r.info.status, 'files': [f.path for f in client.list_artifacts(r.info.run_id, 'diagnostics')],
    'curve': len(client.get_metric_history(r.info.run_id, 'enc_grad_norm_epoch0')),
    'bleu': r.data.metrics.get('test_bleu')} for r in children}}))
"""
    runs = json.loads(run([sys.executable, "-c", check, summary["parent_run_id"]], repo, env).stdout)
    assert runs["parent"] == "FINISHED" and set(runs["children"]) == set(models)
    for name, child in runs["children"].items():
        assert child["status"] == "FINISHED" and child["bleu"] == models[name]["test"]["bleu"]
        assert "diagnostics/records.json" in child["files"] and "diagnostics/encoder_gradients.png" in child["files"]
        assert child["curve"] == len(models[name]["encoder_grad"]["initialisation"])
    assert "study" not in run(["dvc", "status", "studies/dvc.yaml"], repo, env).stdout  # up to date: nothing to redo
