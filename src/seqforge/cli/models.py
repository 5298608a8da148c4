"""Commands for registered models: translate, chat, models, promote, export, ui."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from seqforge.cli.app import _client, _fail, _tracking, app
from seqforge.cli.output import AsJson, show
from seqforge.config.base import ConfigError
from seqforge.export import ExportError
from seqforge.tracking.client import TrackingError, tracking_uri


def _model_uri(model: str) -> str:
    """`NAME@ALIAS` or `NAME/VERSION` -> an MLflow `models:/` URI (URIs pass through)."""
    if "://" in model or model.startswith("models:/") or Path(model).exists():
        return model
    if "@" not in model and "/" not in model:
        raise typer.BadParameter(f"expected NAME@ALIAS or NAME/VERSION, got {model!r}", param_hint="--model")
    return f"models:/{model}"


def _pinned(uri: str) -> str:
    """`models:/NAME@ALIAS` -> `models:/NAME/VERSION` as the registry has it now (said on stderr); a `models:/` URI
    naming a model, alias or version the registry does not hold is one line and exit 2. Other URIs pass through."""
    import mlflow

    if not uri.startswith("models:/"):
        return uri
    name, at, alias = uri.removeprefix("models:/").partition("@")
    client = mlflow.MlflowClient(tracking_uri())
    try:
        if at:
            version = client.get_model_version_by_alias(name, alias).version
            typer.echo(f"{name}@{alias} is version {version}", err=True)
            return f"models:/{name}/{version}"
        name, _, version = name.partition("/")
        if version.isdigit():
            client.get_model_version(name, version)
        return uri
    except mlflow.exceptions.MlflowException as err:
        raise typer.BadParameter(
            f"cannot load {uri} from {tracking_uri()}: {err.message}", param_hint="--model"
        ) from None


def load_registered(model: str, kind: str):
    """Load a registered pyfunc of task kind `kind` by name, and the URI it was loaded from (`models:/NAME/VERSION`
    for a registered one); an alias is resolved now, so alias moves are picked up."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    uri = _pinned(_model_uri(model))
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except mlflow.exceptions.MlflowException as err:
        raise typer.BadParameter(
            f"cannot load {uri} from {tracking_uri()}: {err.message}", param_hint="--model"
        ) from None
    try:
        found = pyfunc.unwrap_python_model().predictor.meta["kind"]
    except (AttributeError, KeyError, mlflow.exceptions.MlflowException):
        found = "unknown"
    if found != kind:
        raise typer.BadParameter(f"{uri} is not a {kind} model (its kind: {found})", param_hint="--model")
    return pyfunc, uri


@app.command()
def translate(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="NAME@ALIAS (e.g. translation-en-de@challenger), NAME/VERSION or a model URI"
        ),
    ],
    sentences: Annotated[list[str] | None, typer.Argument(help="sentences; none: read stdin lines")] = None,
) -> None:
    """Translate sentences (arguments, or one per stdin line) in one batch."""
    import pandas as pd

    texts = list(sentences) if sentences else [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise typer.BadParameter("no input sentences (pass arguments or pipe lines on stdin)")
    pyfunc, _ = load_registered(model, "translation")
    result = _predict(pyfunc, pd.DataFrame({"source": texts}))
    for line in result["translation"]:
        typer.echo(line)


def _predict(pyfunc, frame):
    """`pyfunc.predict`; an input it rejects (request limits, schema) or a model-side failure (out of
    memory, ...) exits 2 with a one-line message."""
    import mlflow

    try:
        return pyfunc.predict(frame)
    except mlflow.exceptions.MlflowException as err:
        message = err.message
    except (RuntimeError, ValueError, MemoryError) as err:
        message = f"the model failed on this input: {type(err).__name__}: {err}"
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _chat_window(pyfunc, window: int | None) -> int:
    """Turns of history sent with each message: `--window`, else (and at most) the context the model was
    trained on, which the model applies to any request."""
    trained = int(pyfunc.unwrap_python_model().predictor.meta["task"]["data"]["context_turns"])
    if window is not None and window > trained:
        typer.echo(
            f"error: --window {window}: the model was trained on the last {trained} turns and uses no more", err=True
        )
        raise typer.Exit(2)
    return window or trained


def _chat_page(pyfunc, label: str, window: int, host: str, port: int, open_page: bool) -> None:
    """Serve the chat page (`seqforge.serving.chat_page`) until Ctrl-C, opening it in a browser if asked."""
    import threading
    import webbrowser

    import uvicorn

    from seqforge.serving.chat_page import chat_app

    url = f"http://{host}:{port}/"
    typer.echo(f"chat page for {label} on {url} (Ctrl-C stops it)", err=True)
    if open_page:
        threading.Timer(1.0, webbrowser.open, [url]).start()
    uvicorn.run(chat_app(pyfunc, label, window), host=host, port=port, log_level="warning")


@app.command()
def chat(
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="NAME@ALIAS (e.g. chatbot-dailydialog@challenger), NAME/VERSION or a model URI"
        ),
    ],
    window: Annotated[
        int | None,
        typer.Option(min=1, help="previous turns sent as context (default and most: what the model was trained with)"),
    ] = None,
    web: Annotated[bool, typer.Option("--web", help="a chat page in the browser instead of the terminal")] = False,
    host: Annotated[str, typer.Option(help="--web: the interface the page is served on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="--web: the page's port")] = 7860,
    open_page: Annotated[bool, typer.Option("--open/--no-open", help="--web: open the page in a browser")] = True,
) -> None:
    """Chat with a registered chatbot. Interactive on a terminal (/reset, /quit, Ctrl-D);
    with piped stdin, one reply per input line, the conversation carried across lines; with --web, on a page
    served at http://HOST:PORT/ (a reset button; the version that answers named), until Ctrl-C."""
    import pandas as pd

    pyfunc, uri = load_registered(model, "chatbot")
    window = _chat_window(pyfunc, window)
    if web:
        _chat_page(pyfunc, f"{model} (version {uri.rsplit('/', 1)[-1]})" if uri.startswith("models:/") else model,
                   window, host, port, open_page)  # fmt: skip
        return
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo(f"chatting with {model} (context: last {window} turns). /reset starts over, /quit or Ctrl-D ends.")
    history: list[str] = []
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive and line == "":
            break
        line = line.strip()
        if line == "/quit":
            break
        if line == "/reset":
            history = []
            if interactive:
                typer.echo("(conversation reset)")
            continue
        if not line:
            continue
        history.append(line)
        reply = _predict(pyfunc, pd.DataFrame({"conversation": [history[-window:]]}))["reply"][0]
        history.append(reply)
        typer.echo(f"bot> {reply}" if interactive else reply)
    if interactive:
        typer.echo("")


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="registered model name; all when omitted")] = None,
    as_json: AsJson = False,
) -> None:
    """Table of registered models and versions: aliases, architecture, metrics, data version."""
    from seqforge.tracking.lifecycle import list_versions

    rows = list_versions(_client(), name)
    shown = [
        {
            "name": r["name"],
            "version": r["version"],
            "aliases": r["aliases"],
            "experiment": r["arch"],
            "backend": r["backend"],
            "metric": "" if r["value"] is None else f"{r['metric']} {r['value']:.2f}",
            "chrF": "" if r["chrf"] is None else f"{r['chrf']:.2f}",
            "data version": r["data_version"],
            "created": r["created"],
            "note": "undertrained" if r["undertrained"] else "",
        }
        for r in rows
    ]
    show(f"registered models — {_tracking()}", shown, as_json, data=rows)
    if not as_json:
        for r in rows:  # the figures behind each note, in full
            if r["undertrained"]:
                print(f"{r['name']} v{r['version']} undertrained: {r['undertrained']}")


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="registered model, e.g. translation-en-de")],
    version: Annotated[str | None, typer.Option(help="candidate version (default: the --from alias)")] = None,
    from_alias: Annotated[str, typer.Option("--from", help="alias holding the candidate")] = "challenger",
    to_alias: Annotated[str, typer.Option("--to", help="alias to move")] = "champion",
    force: Annotated[bool, typer.Option(help="promote even if worse or incomparable")] = False,
    reason: Annotated[str | None, typer.Option(help="why (required with --force; recorded)")] = None,
) -> None:
    """Move an alias (default @champion) to a candidate that beats the current holder."""
    from seqforge.tracking.lifecycle import PromotionError
    from seqforge.tracking.lifecycle import promote as do_promote

    try:
        done = do_promote(
            _client(), name, version=version, from_alias=from_alias, to_alias=to_alias, force=force, reason=reason
        )
    except PromotionError as err:
        typer.echo(f"promote: {err}", err=True)
        raise typer.Exit(1) from None
    before = f"v{done.previous} ({done.metric}={done.previous_value})" if done.previous else "nobody"
    typer.echo(
        f"{done.name}@{done.alias}: v{done.version} ({done.metric}={done.candidate_value}), "
        f"was {before}{' [forced]' if done.forced else ''}"
    )


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME/VERSION of a registered Transformer")],
    fmt: Annotated[str, typer.Option("--format", help="ct2: CTranslate2")] = "ct2",
    quantization: Annotated[
        str, typer.Option(help="weights: float32 | int8 | int8_float32 | bfloat16 | float16 (GPUs)")
    ] = "int8",
    alias: Annotated[str | None, typer.Option(help="alias of the new version (default: FORMAT-QUANTIZATION)")] = None,
) -> None:
    """Convert a registered model for fast inference, score it on its task's test split, and register it as a
    new version of the same model (tag `backend`, its source version in `source_version`)."""
    from seqforge.export.versions import export_version

    _client()
    try:
        done = export_version(model, fmt, quantization, alias)
    except (ExportError, ConfigError, TrackingError) as err:
        raise _fail("export", err) from None
    metric = "bleu" if "bleu" in done["metrics"] else next(iter(done["metrics"]))
    typer.echo(
        f"registered {done['name']} version {done['version']} ({done['backend']}, {quantization}; from version "
        f"{done['source_version']}) as @{done['alias']}: test {metric} {done['metrics'][metric]} (source "
        f"{done['source_metrics'].get(metric, '?')}), {done['metrics']['decode_sentences_per_s']} sentences/s "
        f"(source {done['source_metrics'].get('decode_sentences_per_s', '?')})"
    )


@app.command()
def ui(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5000) -> None:
    """Start the MLflow UI on the project's store."""
    import subprocess

    uri = _tracking()
    if uri.startswith("http"):
        typer.echo(f"the store is a tracking server already: open {uri}")
        return
    subprocess.run(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)],
        check=False,
    )
