"""`seqforge` command line: fetch corpora, translate with a registered model."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _model_uri(model: str) -> str:
    """`NAME@ALIAS` or `NAME/VERSION` -> an MLflow `models:/` URI (URIs pass through)."""
    if "://" in model or model.startswith("models:/") or Path(model).exists():
        return model
    if "@" not in model and "/" not in model:
        raise typer.BadParameter(f"expected NAME@ALIAS or NAME/VERSION, got {model!r}", param_hint="--model")
    return f"models:/{model}"


def load_registered(model: str):
    """Load a registered pyfunc by name, resolving the alias now (picks up alias moves)."""
    import mlflow

    from seqforge.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    uri = _model_uri(model)
    try:
        return mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as err:
        raise typer.BadParameter(
            f"cannot load {uri} from {tracking_uri()}: {err.message}", param_hint="--model"
        ) from None


@app.command()
def fetch(
    mirror: Annotated[Path | None, typer.Option(help="offline mirror folder (default: $SEQFORGE_DATA_MIRROR)")] = None,
) -> None:
    """Fetch and verify the raw corpora into data/ (official source or mirror)."""
    from seqforge import paths
    from seqforge.config import load_config
    from seqforge.data.fetch import FetchError, fetch_corpus

    corpus = load_config().translation.corpus
    try:
        files = fetch_corpus(corpus, paths.raw_dir(corpus), mirror=mirror)
    except FetchError as err:
        typer.echo(f"fetch: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(files)} {corpus} files verified in {paths.raw_dir(corpus)}")


@app.command()
def profile(name: Annotated[str, typer.Argument(help="default, smoke, gpu, or any conf/profiles/<name>.yaml")]) -> None:
    """Switch the pipeline profile (the `profile` key of conf/config.yaml that DVC tracks)."""
    from seqforge.config import ConfigError, set_profile

    try:
        set_profile(name)
    except ConfigError as err:
        typer.echo(f"profile: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"profile: {name}")


@app.command()
def translate(
    sentences: Annotated[list[str] | None, typer.Argument(help="sentences; none: read stdin lines")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="NAME@ALIAS, NAME/VERSION or a model URI")] = "translation-en-de@champion",
) -> None:
    """Translate sentences (arguments, or one per stdin line) in one batch."""
    import pandas as pd

    texts = list(sentences) if sentences else [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise typer.BadParameter("no input sentences (pass arguments or pipe lines on stdin)")
    pyfunc = load_registered(model)
    result = pyfunc.predict(pd.DataFrame({"source": texts}))
    for line in result["translation"]:
        typer.echo(line)


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app()


if __name__ == "__main__":
    main()
