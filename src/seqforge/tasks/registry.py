"""Task kinds by name (`kind:` in `conf/tasks/<name>.yaml`): `@register_kind("name")` on a `TaskKind` subclass.

A kind brings its config schema beside it; tasks validate against the union of registered kinds' schemas.
Adding a kind is one module that registers itself plus one `conf/tasks/<name>.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field, TypeAdapter

from seqforge.config.base import (
    CONF_DIR,
    TAGS,
    ConfigError,
    active_profile,
    group_file,
    group_names,
    merge,
    profile_overlay,
    read_yaml,
    validate,
)
from seqforge.tasks.base import TaskCfg, TaskKind

KINDS: dict[str, TaskKind] = {}
K = TypeVar("K", bound=type[TaskKind])


def register_kind(name: str) -> Callable[[K], K]:
    """Class decorator: register one instance of `cls` as task kind `name` (`cls.config.kind` is `Literal[name]`)."""

    def add(cls: K) -> K:
        kind = cls.config.model_fields["kind"].annotation
        if get_origin(kind) is not Literal or get_args(kind) != (name,) or cls.name != name:
            raise TypeError(f"{cls.__name__}: name and config.kind must both be {name!r} to register kind {name!r}")
        if name in KINDS and type(KINDS[name]) is not cls:
            raise TypeError(f"task kind {name!r} is registered already, by {type(KINDS[name]).__module__}")
        KINDS[name] = cls()
        TAGS.add(name)
        return cls

    return add


def task_kind(name: str) -> TaskKind:
    """The registered kind `name`; a `ConfigError` lists the registered ones."""
    if name not in KINDS:
        raise ConfigError(f"kind: unknown task kind {name!r} (registered: {', '.join(KINDS)})")
    return KINDS[name]


@cache
def _adapter(configs: tuple[type[TaskCfg], ...]) -> TypeAdapter:
    # `Union[...]` over a tuple known only at run time: the `X | Y` spelling cannot take one
    union = configs[0] if len(configs) == 1 else Annotated[Union[configs], Field(discriminator="kind")]  # noqa: UP007
    return TypeAdapter(union)


def task_schema() -> TypeAdapter:
    """Validates a task as the kind its `kind:` names, among the kinds registered now."""
    return _adapter(tuple(kind.config for kind in KINDS.values()))


def task_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """The tasks `conf/tasks/` defines."""
    return group_names(conf_dir / "tasks")


def load_task(name: str, conf_dir: Path = CONF_DIR) -> Any:
    """`conf/tasks/<name>.yaml` with the active profile's `tasks:` overlay; its corpus must exist."""
    path = group_file(conf_dir, "tasks", name, "task")
    profile = active_profile(conf_dir)
    overlay = profile_overlay(profile, conf_dir).get("tasks", {})
    task = validate(task_schema(), merge({"name": name, **read_yaml(path)}, overlay), f"{path} (profile {profile!r})")
    if not (conf_dir / "corpora" / f"{task.corpus}.yaml").is_file():
        known = ", ".join(group_names(conf_dir / "corpora")) or "none"
        raise ConfigError(
            f"{path}: corpus: no corpus {task.corpus!r} in {conf_dir / 'corpora'} "
            f"(known: {known}; add it with `seqforge corpus add`)"
        )
    return task
