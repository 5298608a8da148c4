"""The configuration's foundations: the strict model every schema extends, one error type naming the file and
key, YAML reading, the one overlay function (mappings merge, the rest replaces), profiles and conf groups.

Schemas live beside what they configure (a model family's in its module, a task kind's in its module);
this module knows none of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

CONF_DIR = Path("conf")


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # corpus, task and experiment names (file stems, DVC keys)


LANG_PATTERN = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"  # ISO 639 code, optional script/region: ko, zh-Hans


Lang = Annotated[str, Field(pattern=LANG_PATTERN)]


Name = Annotated[str, Field(pattern=NAME_PATTERN)]


UNSPACED_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue", "wuu"})
TAGS: set[str] = set()  # discriminator values (families, kinds): left out of the dotted keys errors name


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and key."""


class Strict(BaseModel):
    """Unknown keys are errors; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def base_lang(lang: str) -> str:
    """`zh-Hans` -> `zh`: the language subtag, lowercased."""
    return re.split(r"[-_]", lang)[0].lower()


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping file; a `ConfigError` names the file when it is missing or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `over` into a copy of `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(model: Any, data: dict[str, Any], source: str) -> Any:
    """`data` validated as `model` (a class or TypeAdapter); a `ConfigError` names `source` and each wrong key."""
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"] if p not in TAGS)
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None


def active_profile(conf_dir: Path) -> str:
    """The `profile:` of `conf/config.yaml`."""
    return str(read_yaml(conf_dir / "config.yaml").get("profile", "default"))


PROFILE_SECTIONS = ("train", "evaluate", "serve", "mlflow", "tasks", "families", "tune", "study", "study_long")


def profile_overlay(profile: str, conf_dir: Path) -> dict[str, Any]:
    """`conf/profiles/<profile>.yaml`: the sections it overlays."""
    path = conf_dir / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "profiles").glob("*.yaml"))
        raise ConfigError(
            f"{conf_dir / 'config.yaml'}: profile: unknown profile {profile!r} (known: {', '.join(known)})"
        )
    overlay = read_yaml(path)
    unknown = sorted(set(overlay) - set(PROFILE_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: not a profile section (sections: {', '.join(PROFILE_SECTIONS)})")
    return overlay


def set_profile(profile: str, conf_dir: Path = CONF_DIR) -> None:
    """Switch the active profile: rewrite the `profile:` line of `conf/config.yaml` in place."""
    profile_overlay(profile, conf_dir)  # validates the name
    path = conf_dir / "config.yaml"
    text, n = re.subn(r"(?m)^profile:[ \t]*\S+", f"profile: {profile}", path.read_text(), count=1)
    if n != 1:
        raise ConfigError(f"{path}: no top-level `profile:` line to switch")
    path.write_text(text)


def group_names(folder: Path) -> list[str]:
    """The names (file stems) of a conf group folder's YAML files."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def group_file(conf_dir: Path, group: str, name: str, what: str) -> Path:
    """`conf/<group>/<name>.yaml`, or a `ConfigError` listing the names the group has."""
    path = conf_dir / group / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(group_names(conf_dir / group)) or "none"
        raise ConfigError(f"{path}: unknown {what} {name!r} (known: {known})")
    return path


def nest(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> nested mappings: `{"optim.lr": 1}` -> `{"optim": {"lr": 1}}`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(data: dict[str, Any] | BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a nested config, for MLflow params."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
