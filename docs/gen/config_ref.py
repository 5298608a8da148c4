"""The configuration reference, read from the pydantic schemas: every key of every conf/ file with its type
(and bounds), its default and its one-line description, which is the comment beside the field in the schema's
source (typed once, where the field is)."""

from __future__ import annotations

import ast
import inspect
import io
import tokenize
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from docs.gen.markdown import cell, header
from seqforge.config.shared import Config, DecodeCfg, OptimCfg, TokenizerCfg
from seqforge.corpora.registry import CorpusCfg
from seqforge.corpora.synthetic import SyntheticCfg
from seqforge.experiments.config import ExperimentCfg
from seqforge.experiments.recipes import RecipeRule, Recipes
from seqforge.models.registry import FAMILIES
from seqforge.research.study_config import StudyCfg, StudyModelCfg
from seqforge.research.tune_config import TuneCfg
from seqforge.stack.config import StackCfg
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import KINDS


class MissingDescription(ValueError):
    """A documented key whose schema field has no comment to describe it."""


def _comments(cls: type) -> dict[str, str]:
    """Field -> its comment in `cls`'s own source: the comment on the field's line(s), continued by the
    comment-only lines after it when the next field has its own comment on its line; else the comment lines
    right above the field."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments = {
        tok.start[0]: tok.string.lstrip("#").strip()
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    code = {i + 1 for i, line in enumerate(source.splitlines()) if line.strip() and not line.strip().startswith("#")}
    fields = [
        n for n in ast.parse(source).body[0].body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    ]
    own = {n.target.id: [comments[i] for i in range(n.lineno, n.end_lineno + 1) if i in comments] for n in fields}
    out = {}
    for i, node in enumerate(fields):
        name, text = node.target.id, list(own[node.target.id])
        after = node.end_lineno + 1
        run = []
        while after in comments and after not in code:
            run.append(comments[after])
            after += 1
        following = fields[i + 1].target.id if i + 1 < len(fields) else None
        if text and run and (following is None or own[following]):
            text += run
        if not text:
            line, above = node.lineno - 1, []
            while line in comments and line not in code:
                above.insert(0, comments[line])
                line -= 1
            text = above
        if text:
            out[name] = " ".join(text)
    return out


def description(model: type[BaseModel], field: str) -> str:
    for cls in model.__mro__:
        if field in getattr(cls, "__annotations__", {}):
            return _comments(cls).get(field, "")
    return ""


def _bounds(metadata: list) -> str:
    shown = []
    for item in metadata:
        for kind, attr, sign in ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<")):
            if isinstance(item, kind):
                shown.append(f"{sign} {getattr(item, attr)}")
        if getattr(item, "pattern", None):
            shown.append(f"matching `{item.pattern}`")
    return " ".join(shown)


def type_name(annotation: Any) -> str:
    """A field's type as a reader of YAML sees it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        inner, *meta = args
        if any(getattr(getattr(m, "func", None), "__name__", "") == "_duration" for m in meta):
            return "duration (`20m`, `1h30m`, `90s`)"
        return type_name(inner)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" if isinstance(a, str) else f"`{a!s}`" for a in args)
    if origin in (Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or `null`" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if args else "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    names = {int: "integer", float: "number", str: "text", bool: "`true` \\| `false`", Any: "any value"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field) -> str:
    if field.default is PydanticUndefined:
        return "required" if field.default_factory is None else f"`{_yaml(field.default_factory())}`"
    if isinstance(field.default, BaseModel):
        return ""
    return f"`{_yaml(field.default)}`"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The schema of a nested section (optional ones included), or None."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _section_of(inner[0]) if len(inner) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def rows(
    model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = (), missing: list[str] | None = None
) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every field of `model`, nested sections flattened as dotted keys;
    a field without a description goes into `missing` (raised here when none is given)."""
    out, absent = [], [] if missing is None else missing
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        key = f"{prefix}{name}"
        section = _section_of(field.annotation)
        if section is not None:
            out += rows(section, f"{key}.", missing=absent)
            continue
        text = description(model, name)
        if not text:
            absent.append(f"{model.__module__}.{model.__qualname__}.{name}")
        bounds = _bounds(field.metadata)
        out.append(
            (f"`{key}`", type_name(field.annotation) + (f" ({bounds})" if bounds else ""), _default(field), text)
        )
    if missing is None and absent:
        raise MissingDescription("no description (a comment beside the field): " + ", ".join(absent))
    return out


MISSING: list[str] = []  # what the reference being written found undescribed


def table(model: type[BaseModel], prefix: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    return [
        *header("key", "type", "default", ""),
        *(f"| {k} | {t} | {d} | {cell(c)} |" for k, t, d, c in rows(model, prefix, skip, MISSING)),
        "",
    ]


def _doc(model: type) -> str:
    return inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def shipped(registry: dict) -> dict:
    """The entries of a plugin registry that seqforge itself defines (a process may have registered others)."""
    return {
        name: entry
        for name, entry in registry.items()
        if (entry if isinstance(entry, type) else type(entry)).__module__.startswith("seqforge.")
    }


def config_reference() -> str:
    """Every conf/ file's keys."""
    MISSING.clear()
    own = {"name"}  # set from the file's name by its loader
    lines = ["## `conf/config.yaml`", "", _doc(Config), "", *table(Config)]
    lines += [
        "## `conf/tasks/<task>.yaml`",
        "",
        _doc(TaskCfg) + " The file's name is the task's name.",
        "",
        *table(TaskCfg, skip=tuple(own | {"kind", "tokenizer", "decode"})),
        "### `tokenizer:`",
        "",
        *table(TokenizerCfg, "tokenizer."),
        "### `decode:`",
        "",
        _doc(DecodeCfg),
        "",
        *table(DecodeCfg, "decode."),
    ]
    for kind_name, kind in shipped(KINDS).items():
        extra = tuple(n for n in TaskCfg.model_fields if n != "kind")
        lines += [f"### kind `{kind_name}`", "", _doc(kind.config), "", *table(kind.config, skip=extra)]
    lines += [
        "## `conf/experiments/<name>.yaml`",
        "",
        _doc(ExperimentCfg) + " The file's name is the experiment's.",
        "",
        *table(ExperimentCfg, skip=("name", "model", "optim")),
        "### `optim:`",
        "",
        *table(OptimCfg, "optim."),
    ]
    for arch, family in shipped(FAMILIES).items():
        lines += [f"### `model:` of family `{arch}`", "", _doc(family.config), "", *table(family.config, "model.")]
    lines += [
        "## `conf/corpora/<name>.yaml`",
        "",
        _doc(CorpusCfg) + " The file's name is the corpus's.",
        "",
        *table(CorpusCfg, skip=("name",)),
        "### `synthetic:` (format `synthetic`)",
        "",
        _doc(SyntheticCfg),
        "",
        *table(SyntheticCfg, "synthetic."),
    ]
    lines += ["## `conf/tune/<experiment>.yaml`", "", _doc(TuneCfg), "", *table(TuneCfg)]
    lines += [
        "## `conf/study.yaml`, `conf/study_long.yaml`",
        "",
        _doc(StudyCfg),
        "",
        *table(StudyCfg),
        "### `models.<name>:`",
        "",
        _doc(StudyModelCfg),
        "",
        *table(StudyModelCfg, "models.<name>."),
    ]
    lines += [
        "## `conf/recipes.yaml`",
        "",
        _doc(Recipes),
        "",
        *table(Recipes),
        "### a rule (`kinds.<kind>[]`)",
        "",
        _doc(RecipeRule),
        "",
        *table(RecipeRule, "kinds.<kind>[]."),
    ]
    lines += ["## `conf/stack.yaml`", "", _doc(StackCfg), "", *table(StackCfg)]
    if MISSING:
        raise MissingDescription("no description (a comment beside the field): " + ", ".join(dict.fromkeys(MISSING)))
    return "\n".join(lines).rstrip() + "\n"
