"""Commands for the team stack on this machine: stack up|env|down."""

from __future__ import annotations

import typer

from seqforge.cli.app import _fail, app
from seqforge.config.base import ConfigError
from seqforge.stack.config import credentials, env, exports, load_stack
from seqforge.stack.processes import StackError
from seqforge.stack.services import down, up

stack_app = typer.Typer(
    no_args_is_help=True,
    help="The team stack on this machine: PostgreSQL, S3 (SeaweedFS), "
    "MLflow server with auth (conf/stack.yaml, infra/README.md).",
)
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up() -> None:
    """Start the stack (or keep it running); prints the `export` lines its clients need (also in <dir>/env.sh)."""
    try:
        cfg = load_stack()
        typer.echo(f"starting the stack in {cfg.dir}/ (logs in {cfg.dir}/logs/) ...", err=True)
        variables = up(cfg)
    except (ConfigError, StackError) as err:
        raise _fail("stack up", err) from None
    typer.echo(exports(variables), nl=False)
    typer.echo(
        f"stack up: MLflow {cfg.tracking_uri} (user {cfg.mlflow.admin_username}), S3 {cfg.s3_endpoint} "
        f"bucket {cfg.s3.bucket}, PostgreSQL {cfg.host}:{cfg.postgres.port}; DVC remote "
        f"'{cfg.dvc.remote}' is the default. Export the lines above, or: source {cfg.dir}/env.sh",
        err=True,
    )


@stack_app.command("env")
def stack_env() -> None:
    """Print the `export` lines for the running stack (`eval "$(seqforge stack env)"`)."""
    try:
        cfg = load_stack()
    except ConfigError as err:
        raise _fail("stack env", err) from None
    typer.echo(exports(env(cfg, credentials(cfg))), nl=False)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the stack; its data stays in the stack's dir for the next `stack up`."""
    try:
        down(load_stack())
    except (ConfigError, StackError) as err:
        raise _fail("stack down", err) from None
    typer.echo("stack down", err=True)
