"""`seqforge export`: a registered version converted to a fast-inference format (`FORMATS`), measured on its
task's test split like any version, and registered as a new version of the same model, with the source
version in its lineage and the same decoding settings and request limits."""

from __future__ import annotations

import importlib
import json
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from seqforge.config.shared import DecodeCfg
from seqforge.core import paths
from seqforge.corpora.registry import load_corpus
from seqforge.export import FORMATS, ExportError
from seqforge.inference.evaluation import test_report
from seqforge.inference.predictor import Predictor
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import load_task
from seqforge.tracking.client import data_version, first_line, tracking_uri
from seqforge.tracking.versions import describe_version, register_model_dir, version_tags


def source_version(client, model: str):
    """The registered version `NAME@ALIAS` or `NAME/VERSION` names."""
    name, at, ref = model.partition("@")
    if not at:
        name, _, ref = model.partition("/")
    if not name or not ref:
        raise ExportError(f"{model!r}: expected NAME@ALIAS or NAME/VERSION")
    try:
        return client.get_model_version_by_alias(name, ref) if at else client.get_model_version(name, ref)
    except MlflowException as err:
        raise ExportError(f"{model}: not in the registry at {tracking_uri()} ({first_line(err)})") from None


def download_version(version, dst: Path) -> tuple[Path, dict]:
    """Registered `version`'s exported model directory (downloaded under `dst`) and its pyfunc config
    (decoding settings, request limits)."""
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=str(dst)))
    return next(local.glob("artifacts/*/model.json")).parent, Model.load(str(local)).flavors["python_function"][
        "config"
    ]


def write_export(predictor: Predictor, meta: dict, out_dir: Path, fmt: str, quantization: str, **lineage) -> None:
    """An exported model directory of format `fmt`: `predictor`'s model converted, its tokenizer, and a
    `model.json` (`meta` + backend, quantization, `lineage`) that makes `Predictor.load` use the backend."""
    form = FORMATS[fmt]
    importlib.import_module(form.module).convert(
        predictor.model, meta["experiment"]["model"]["arch"], predictor.tokenizer, out_dir, quantization
    )
    predictor.tokenizer.save(out_dir / "tokenizer.json")
    (out_dir / "model.json").write_text(
        json.dumps({**meta, "backend": form.backend, "quantization": quantization, **lineage}, indent=2)
    )


def check_test_split(task: TaskCfg, meta: dict, label: str, model_dir: Path) -> None:
    """The task's tokenized test split here is the one `label` was measured on: same corpus bytes, same
    tokenizer (another profile or tokenizer setting tokenizes other data)."""
    tokenized = paths.tokenized_dir(task.name)
    fix = (
        f"switch to profile {meta['profile']} (`seqforge profile {meta['profile']}`) "
        f"and run `dvc repro tokenize@{task.name}`"
    )
    if not (tokenized / "dataset_dict.json").is_file():
        raise ExportError(f"{tokenized}: not found; an export is measured on its task's test split: {fix}")
    if data_version(load_corpus(task.corpus)) != meta["data_version"]:
        raise ExportError(f"corpus {task.corpus} here is not the data {label} was trained on ({meta['data_version']})")
    if (tokenized / "tokenizer.json").read_text() != (model_dir / "tokenizer.json").read_text():
        raise ExportError(f"{tokenized} was tokenized with another tokenizer than {label}'s: {fix}")


def export_version(model: str, fmt: str, quantization: str, alias: str | None = None) -> dict:
    """Convert registered version `model` to `fmt` with weights as `quantization`, score it on the test split
    with the source's decoding settings, and register it (alias `alias`, default `<fmt>-<quantization>`).
    Returns the new version's record, with the source's and the export's test metrics."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    form = FORMATS[fmt]
    converter = importlib.import_module(form.module)
    if quantization not in converter.QUANTIZATIONS:
        raise ExportError(f"--quantization {quantization!r}: {fmt} takes {', '.join(converter.QUANTIZATIONS)}")
    client = mlflow.MlflowClient()
    source = source_version(client, model)
    label = f"{source.name} v{source.version}"
    with tempfile.TemporaryDirectory(prefix="seqforge-export-") as tmp:
        src_dir, model_config = download_version(source, Path(tmp))
        meta = Predictor.read_meta(src_dir)
        if meta.get("backend", "pytorch") != "pytorch":
            raise ExportError(
                f"{label} is a {meta['backend']} export already (of version "
                f"{meta['source_version']['version']}): export that one"
            )
        decode = DecodeCfg.model_validate(model_config["decode"])
        task = load_task(meta["task"]["name"]).model_copy(update={"decode": decode})
        out_dir = Path(tmp) / f"{meta['experiment']['name']}-{fmt}-{quantization}"
        try:
            write_export(
                Predictor.from_dir(src_dir, meta, DecodeCfg(device="cpu")),
                meta,
                out_dir,
                fmt,
                quantization,
                source_version={"name": source.name, "version": source.version},
            )
        except ExportError as err:
            raise ExportError(f"{label}: {err}") from None
        check_test_split(task, meta, label, src_dir)
        report = test_report(out_dir, task)[0]
        alias = alias or f"{fmt}-{quantization}"
        tags = {
            **version_tags(meta, task, report),
            "backend": form.backend,
            "quantization": quantization,
            "source_version": source.version,
        }
        description = (
            describe_version(meta, task, report, decode)
            + f"\n- Backend: {form.backend}, weights {quantization}; exported from version {source.version}."
        )
        version = register_model_dir(
            out_dir,
            task,
            meta["run_id"],
            model_config,
            tags,
            description,
            alias,
            artifact=f"model-{fmt}-{quantization}",
            extra_requirements=(form.requirement,),
        )
    return {
        "name": source.name,
        "version": version,
        "alias": alias,
        "source_version": source.version,
        "backend": form.backend,
        "quantization": quantization,
        "metrics": report["metrics"],
        "source_metrics": {k.removeprefix("test_"): v for k, v in source.tags.items() if k.startswith("test_")},
    }
