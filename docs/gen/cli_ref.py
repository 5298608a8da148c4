"""The CLI reference, read from the Typer app: every command and sub-command with its help, usage, arguments
and options (type, default, help)."""

from __future__ import annotations

import inspect

import typer
from typer._click import Context

from docs.gen.markdown import cell, header
from seqforge.cli import app


def _type(param, ctx) -> str:
    shown = param.display_type(ctx).strip("<>")
    return "flag" if getattr(param, "is_flag", False) else shown


def _default(param) -> str:
    if param.required:
        return "required"
    if param.default is None or param.default == () or param.default == []:
        return ""
    return f"`{param.default}`"


def _names(param) -> str:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`" + ("..." if param.multiple or param.nargs == -1 else "")
    return ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])


def _command(command, ctx, path: str) -> list[str]:
    lines = [
        f"### `{path}`",
        "",
        inspect.cleandoc(command.help or ""),
        "",
        "```",
        " ".join([path, *command.collect_usage_pieces(ctx)]),
        "```",
        "",
    ]
    params = [p for p in command.params if p.name != "help"]
    if params:
        lines += header("argument / option", "type", "default", "")
        lines += [
            f"| {_names(p)} | {_type(p, ctx)} | {_default(p)} | {cell(getattr(p, 'help', None) or '')} |"
            for p in params
        ]
        lines.append("")
    return lines


def _walk(command, ctx, path: str) -> list[str]:
    if not hasattr(command, "list_commands"):
        return _command(command, ctx, path)
    lines = []
    if path != "seqforge":
        lines += [f"## `{path} ...`", "", inspect.cleandoc(command.help or ""), ""]
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        lines += _walk(sub, type(ctx)(sub, info_name=name, parent=ctx), f"{path} {name}")
    return lines


def cli_reference() -> str:
    root = typer.main.get_command(app)
    ctx = Context(root, info_name="seqforge")
    groups = [n for n in root.list_commands(ctx) if hasattr(root.get_command(ctx, n), "list_commands")]
    lines = ["## `seqforge`", "", inspect.cleandoc(root.help or ""), ""]
    for name in [n for n in root.list_commands(ctx) if n not in groups] + groups:
        sub = root.get_command(ctx, name)
        lines += _walk(sub, Context(sub, info_name=name, parent=ctx), f"seqforge {name}")
    return "\n".join(lines).rstrip() + "\n"
