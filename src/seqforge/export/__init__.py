"""Exports of registered models to fast-inference formats (`seqforge export`): `FORMATS` maps a `--format` to
the module that converts and the predictor backend that decodes what it wrote."""

from __future__ import annotations

from dataclasses import dataclass


class ExportError(ValueError):
    """A model or an option that cannot be exported; the message says which and why, in one line."""


@dataclass(frozen=True)
class ExportFormat:
    module: str  # has `QUANTIZATIONS` and `convert(model, arch, tokenizer, model_dir, quantization)`
    backend: str  # the `seqforge.inference.predictor.BACKENDS` key the export's model.json names
    requirement: str  # the package a served export installs


FORMATS = {"ct2": ExportFormat("seqforge.export.ct2", "ctranslate2", "ctranslate2")}
