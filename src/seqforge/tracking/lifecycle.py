"""Model lifecycle in the MLflow registry: list versions, gated promotion between aliases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException


class PromotionError(RuntimeError):
    """A promotion was refused or is impossible; the message says why, with the numbers."""


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    previous: str | None
    metric: str
    candidate_value: float
    previous_value: float | None
    forced: bool


def primary_metric(version: ModelVersion) -> str | None:
    """The test metric that decides promotion: the version's `primary_metric` tag (from its task's kind)."""
    return version.tags.get("primary_metric")


def _metric(version: ModelVersion, metric: str) -> float | None:
    value = version.tags.get(metric)
    return float(value) if value not in (None, "") else None


def _by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def list_versions(client: MlflowClient, name: str | None = None) -> list[dict]:
    """One row per registered version: aliases, architecture, metrics, data version, creation time."""
    names = [name] if name else [m.name for m in client.search_registered_models()]
    rows = []
    for model_name in names:
        aliases: dict[str, list[str]] = {}
        for alias, version in client.get_registered_model(model_name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name='{model_name}'"):
            metric = primary_metric(v) or ""
            rows.append(
                {
                    "name": model_name,
                    "version": int(v.version),
                    "aliases": ", ".join(sorted(aliases.get(str(v.version), []))),
                    "arch": v.tags.get("experiment", v.tags.get("arch", "")),
                    "backend": " ".join(filter(None, (v.tags.get("backend", "pytorch"), v.tags.get("quantization")))),
                    "metric": metric,
                    "value": _metric(v, metric),
                    "chrf": _metric(v, "test_chrf"),
                    "data_version": v.tags.get("data_version", "")[:12],
                    "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
                    "undertrained": v.tags.get("undertrained", ""),
                }
            )
    return sorted(rows, key=lambda r: (r["name"], -r["version"]))


def promote(
    client: MlflowClient,
    name: str,
    *,
    version: str | None = None,
    from_alias: str = "challenger",
    to_alias: str = "champion",
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    """Point `to_alias` at the candidate if it beats the current holder on the task's metric.

    The candidate is `version`, or the version holding `from_alias`. It must be measured on the
    same data version as the current holder and score at least as well; `force` (with a `reason`)
    overrides. The candidate records the previous holder, the reason and the time as tags.
    """
    if force and not reason:
        raise PromotionError("--force needs --reason TEXT (it is recorded on the model version)")
    try:
        candidate = (
            client.get_model_version(name, version) if version else client.get_model_version_by_alias(name, from_alias)
        )
    except MlflowException as err:
        what = f"version {version}" if version else f"alias @{from_alias}"
        raise PromotionError(f"{name}: no {what} ({err.message})") from None
    metric = primary_metric(candidate)
    if metric is None:
        raise PromotionError(f"{name} v{candidate.version}: no `primary_metric` tag (was it registered by seqforge?)")
    current = _by_alias(client, name, to_alias)
    cand_value = _metric(candidate, metric)
    cur_value = _metric(current, metric) if current else None
    if current is not None and current.version == candidate.version:
        raise PromotionError(f"{name} version {candidate.version} already holds @{to_alias}")
    if current is not None and not force:
        cand_data, cur_data = candidate.tags.get("data_version"), current.tags.get("data_version")
        if cand_value is None or cur_value is None or cand_data != cur_data:
            raise PromotionError(
                f"refused: {name} v{candidate.version} ({metric}={cand_value}, data {cand_data}) is not "
                f"comparable with @{to_alias} v{current.version} ({metric}={cur_value}, data {cur_data}); "
                "use --force --reason TEXT to override"
            )
        if cand_value < cur_value:
            raise PromotionError(
                f"refused: {name} v{candidate.version} {metric}={cand_value} is worse than "
                f"@{to_alias} v{current.version} {metric}={cur_value}; use --force --reason TEXT to override"
            )
    client.set_registered_model_alias(name, to_alias, candidate.version)
    record = {
        f"promotion.{to_alias}.previous": str(current.version) if current else "none",
        f"promotion.{to_alias}.time": datetime.now(UTC).isoformat(timespec="seconds"),
        f"promotion.{to_alias}.reason": reason or f"{metric} {cand_value} >= {cur_value}",
        f"promotion.{to_alias}.forced": str(force).lower(),
    }
    for key, value in record.items():
        client.set_model_version_tag(name, candidate.version, key, value)
    previous = str(current.version) if current else None
    return Promotion(name, str(candidate.version), to_alias, previous, metric, cand_value, cur_value, force)
