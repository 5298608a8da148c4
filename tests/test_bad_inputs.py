"""Bad inputs the catalogue (docs/tables/bad_inputs.yaml) lists that no other module tests; tests/test_docs.py
checks the catalogue itself against the tests its rows name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import ROOT
from seqforge.cli import app
from seqforge.config.base import ConfigError
from seqforge.config.shared import load_config
from seqforge.experiments.config import load_experiment


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f"{path} no longer holds {old!r}"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("experiment", "old", "new", "message"),
    [
        ("gru_bahdanau", "  cell: gru", "  cell: gru\n  cell: [", r"not valid YAML"),
        ("transformer", "d_model: 256", "d_model: 250", r"d_model \(250\) must be divisible by heads \(4\)"),
        ("gru_bahdanau", "hidden_dim: 256", "hidden_dimm: 256", r"model.hidden_dimm: Extra inputs are not permitted"),
        (
            "gru_bahdanau",
            "schedule: linear",
            "schedule: cosine",
            r"optim.schedule: Input should be 'inverse_sqrt', 'linear' or 'plateau'",
        ),
        ("gru_bahdanau", "dropout: 0.2", "dropout: 1.5", r"model.dropout: Input should be less than 1"),
    ],
)
def test_a_bad_experiment_file_names_itself_and_the_key(conf_copy, experiment, old, new, message) -> None:
    path = edit(conf_copy / "experiments" / f"{experiment}.yaml", old, new)
    with pytest.raises(ConfigError, match=message) as err:
        load_experiment(experiment, conf_copy)
    assert str(path) in str(err.value)


def test_a_malformed_time_guard_names_the_experiment(conf_copy) -> None:
    edit(conf_copy / "experiments" / "gru_bahdanau.yaml", "budget: 20m", 'budget: 20m\n  max_time: "30 min"')
    exp = load_experiment("gru_bahdanau", conf_copy)
    with pytest.raises(
        ConfigError,
        match=r"experiment gru_bahdanau: train: invalid configuration\n  max_time: String "
        r"should match pattern",
    ):
        exp.train_config(load_config(conf_copy).train)


def test_autoscaling_bounds_out_of_order_name_the_keys(conf_copy) -> None:
    edit(conf_copy / "config.yaml", "max_replicas: null", "max_replicas: 1")
    with pytest.raises(ConfigError, match=r"serve: Value error, max_replicas \(1\) is below replicas \(2\)"):
        load_config(conf_copy)


def test_separate_vocabularies_cannot_share_embeddings(conf_copy) -> None:
    from seqforge.models.registry import build_model

    exp = load_experiment("gru_bahdanau", conf_copy)
    with pytest.raises(
        ConfigError,
        match=r"model.shared_embeddings: needs one joint vocabulary \(tokenizer.joint: "
        r"true\); got source 6000 and target 7000 entries",
    ):
        build_model(exp.model, 6000, 7000)


def test_a_folder_without_an_exported_model_is_named(tmp_path) -> None:
    from seqforge.inference.predictor import Predictor

    with pytest.raises(
        FileNotFoundError,
        match=rf"{re.escape(str(tmp_path))}: no exported model here \(model.json "
        r"missing; run the train stage\)",
    ):
        Predictor.load(tmp_path)


@pytest.fixture
def cli(tmp_path, monkeypatch) -> CliRunner:
    """The CLI against an empty SQLite registry in a scratch project (conf/ copied)."""
    import shutil

    from seqforge.config.base import set_profile

    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    set_profile("default", tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["translate", "-m", "translation-en-de", "A dog."],
            2,
            r"expected NAME@ALIAS or NAME/VERSION, got 'translation-en-de'",
        ),
        (["translate", "-m", "nobody@champion", "A dog."], 2, r"cannot load models:/nobody@champion"),
        (["chat", "-m", "nobody/3"], 2, r"cannot load models:/nobody/3"),
        (["serve", "-m", "nobody@champion"], 2, r"cannot load models:/nobody@champion from .*name=nobody not found"),
        (["serve", "-m", "nobody/3"], 2, r"cannot load models:/nobody/3"),
        (["serve", "-m", "nobody/3", "--follow-alias"], 2, r"--follow-alias.*needs --engine ray and a --model NAME@"),
        (["serve", "-m", "a@b", "--engine", "mlflow", "--follow-alias"], 2, r"needs --engine ray and a --model"),
        (["profile", "huge"], 1, r"profile: .*unknown profile 'huge' \(known: cluster, default, gpu, smoke\)"),
        (
            ["tune", "nope"],
            1,
            r"tune: conf/tune/nope.yaml: no sweep for experiment 'nope' \(sweeps: chatbot_gru_bahdanau",
        ),
        (
            ["promote", "nobody"],
            1,
            r"promote: nobody: no alias @challenger \(Registered Model with name=nobody not found\)",
        ),
    ],
)
def test_cli_mistakes_exit_with_a_message_not_a_traceback(cli, args, code, message) -> None:
    result = cli.invoke(app, args)
    output = " ".join(result.output.replace("│", " ").split())  # stdout and stderr; typer's error box unwrapped
    assert result.exit_code == code, output
    assert re.search(message, output), output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # an exit, not a crash
