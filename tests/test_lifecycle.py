"""Gated promotion against a real MLflow SQLite registry."""

from __future__ import annotations

import mlflow
import pytest

from seqforge.tracking.lifecycle import PromotionError, list_versions, promote

NAME = "translation-en-de"


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture
def client(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("lifecycle")
    return mlflow.MlflowClient()


def register(client, bleu: float, data: str = "abc.dir") -> str:
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Echo(), registered_model_name=NAME)
    version = str(info.registered_model_version)
    client.set_model_version_tag(NAME, version, "primary_metric", "test_bleu")  # as `register` writes it
    client.set_model_version_tag(NAME, version, "test_bleu", str(bleu))
    client.set_model_version_tag(NAME, version, "data_version", data)
    client.set_registered_model_alias(NAME, "challenger", version)
    return version


def test_gated_promotion(client) -> None:
    v1 = register(client, 30.0)
    first = promote(client, NAME)  # no champion yet: the challenger becomes champion
    assert first.version == v1 and first.previous is None

    v2 = register(client, 32.5)
    done = promote(client, NAME)
    assert (done.version, done.previous) == (v2, v1)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v2
    tags = client.get_model_version(NAME, v2).tags
    assert tags["promotion.champion.previous"] == v1 and tags["promotion.champion.forced"] == "false"

    v3 = register(client, 31.0)
    with pytest.raises(PromotionError) as err:
        promote(client, NAME)
    assert "test_bleu=31.0" in str(err.value) and "test_bleu=32.5" in str(err.value)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == v2  # unchanged

    with pytest.raises(PromotionError, match="--force needs --reason"):
        promote(client, NAME, force=True)
    forced = promote(client, NAME, force=True, reason="rollback drill")
    assert forced.forced and forced.version == v3
    tags = client.get_model_version(NAME, v3).tags
    assert tags["promotion.champion.reason"] == "rollback drill" and tags["promotion.champion.previous"] == v2


def test_other_data_version_is_incomparable(client) -> None:
    register(client, 30.0)
    promote(client, NAME)
    register(client, 40.0, data="other.dir")
    with pytest.raises(PromotionError, match="not comparable"):
        promote(client, NAME)


def test_explicit_version_and_table(client) -> None:
    v1 = register(client, 30.0)
    register(client, 29.0)
    promote(client, NAME, version=v1)
    rows = list_versions(client, NAME)
    assert [r["version"] for r in rows] == [2, 1]
    assert rows[1]["aliases"] == "champion" and rows[0]["aliases"] == "challenger"
    assert rows[1]["value"] == 30.0
    with pytest.raises(PromotionError, match="no version 9"):
        promote(client, NAME, version="9")
