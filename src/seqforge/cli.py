"""`seqforge` command line: fetch corpora, translate or chat with a registered model, manage versions."""

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


def _pin_alias(uri: str) -> str:
    """`models:/NAME@ALIAS` -> `models:/NAME/VERSION` as the registry has it now, said on stderr."""
    import mlflow

    name, _, alias = uri.removeprefix("models:/").partition("@")
    version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    typer.echo(f"{name}@{alias} is version {version}", err=True)
    return f"models:/{name}/{version}"


def load_registered(model: str, kind: str):
    """Load a registered pyfunc of task kind `kind` by name; an alias is resolved now, so alias moves are picked up."""
    import mlflow

    from seqforge.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    uri = _model_uri(model)
    try:
        pyfunc = mlflow.pyfunc.load_model(_pin_alias(uri) if uri.startswith("models:/") and "@" in uri else uri)
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
    return pyfunc


def _fail(command: str, err: Exception) -> typer.Exit:
    """One error line on stderr (no traceback) and exit status 1."""
    typer.echo(f"{command}: {err}", err=True)
    return typer.Exit(1)


@app.command()
def fetch(
    mirror: Annotated[Path | None, typer.Option(help="offline mirror folder (default: $SEQFORGE_DATA_MIRROR)")] = None,
) -> None:
    """Fetch and verify the raw corpora of every task into data/ (official source or mirror)."""
    from seqforge import paths
    from seqforge.config import ConfigError, load_corpus, load_task, task_names, write_index
    from seqforge.data.fetch import FetchError, fetch_all

    try:
        write_index()
        corpora = sorted({load_task(t).corpus for t in task_names()})
        fetched = fetch_all([load_corpus(c) for c in corpora], paths.DATA, mirror=mirror)
    except (ConfigError, FetchError) as err:
        raise _fail("fetch", err) from None
    for corpus, files in fetched.items():
        typer.echo(f"{len(files)} {corpus} files verified in {paths.raw_dir(corpus)}")


@app.command()
def sync() -> None:
    """Regenerate conf/pipeline.yaml (the task and experiment lists of dvc.yaml) from conf/."""
    from seqforge.config import ConfigError, write_index

    try:
        changed = write_index()
    except ConfigError as err:
        raise _fail("sync", err) from None
    typer.echo("conf/pipeline.yaml " + ("updated" if changed else "up to date"))


corpus_app = typer.Typer(no_args_is_help=True, help="Corpora: your own data, read, recorded in conf/corpora/, pinned by DVC.")
task_app = typer.Typer(no_args_is_help=True, help="Tasks: a corpus, a language pair and experiments, in conf/tasks/.")
app.add_typer(corpus_app, name="corpus")
app.add_typer(task_app, name="task")


@corpus_app.command("add")
def corpus_add(
    name: Annotated[str, typer.Argument(help="corpus name (data/<name>/, conf/corpora/<name>.yaml)")],
    format: Annotated[str, typer.Option("--format", help="tsv, csv, jsonl, parquet, text_pair, hf, multi30k, dailydialog")],
    source: Annotated[list[str], typer.Option("--source", help="file, folder or Hugging Face dataset (text_pair: give it twice)")],
    columns: Annotated[str | None, typer.Option(help="LANG=COL,... (0-based index, header name or JSON field; turns=FIELD for dialogues)")] = None,
    split: Annotated[str | None, typer.Option(help="held-out sizes of a one-file corpus: validation=N,test=N")] = None,
    seed: Annotated[int, typer.Option(help="seed of the held-out carving")] = 0,
) -> None:
    """Read and validate a corpus, copy it into data/, record it in conf/corpora/ and pin it with DVC."""
    from seqforge.catalog import CatalogError, add_corpus

    try:
        _, summary = add_corpus(name, format, source, columns, split, seed)
    except CatalogError as err:
        raise _fail("corpus add", err) from None
    for line in summary:
        typer.echo(line)


@task_app.command("add")
def task_add(
    name: Annotated[str, typer.Argument(help="task name; also the registered model's name")],
    kind: Annotated[str, typer.Option(help="translation or chatbot")],
    corpus: Annotated[str, typer.Option(help="a corpus in conf/corpora/")],
    src: Annotated[str | None, typer.Option(help="source language (chatbot: the language)")] = None,
    tgt: Annotated[str | None, typer.Option(help="target language (translation)")] = None,
    experiments: Annotated[str | None, typer.Option(help="experiment templates, comma-separated (default per kind)")] = None,
) -> None:
    """Add a task with experiments built from templates; the next `dvc repro` trains and registers it."""
    from seqforge.catalog import CatalogError, add_task

    try:
        written = add_task(name, kind, corpus, src, tgt, experiments)
    except CatalogError as err:
        raise _fail("task add", err) from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"`dvc repro` now prepares, trains, evaluates and registers {name} (model name {name})")


@app.command()
def profile(name: Annotated[str, typer.Argument(help="default, smoke, gpu, or any conf/profiles/<name>.yaml")]) -> None:
    """Switch the pipeline profile (the `profile` key of conf/config.yaml)."""
    from seqforge.config import ConfigError, set_profile, write_index

    try:
        set_profile(name)
        write_index()
    except ConfigError as err:
        raise _fail("profile", err) from None
    typer.echo(f"profile: {name}")


@app.command()
def translate(
    model: Annotated[str, typer.Option("--model", "-m", help="NAME@ALIAS (e.g. translation-en-de@challenger), NAME/VERSION or a model URI")],
    sentences: Annotated[list[str] | None, typer.Argument(help="sentences; none: read stdin lines")] = None,
) -> None:
    """Translate sentences (arguments, or one per stdin line) in one batch."""
    import pandas as pd

    texts = list(sentences) if sentences else [line.rstrip("\n") for line in sys.stdin]
    if not texts:
        raise typer.BadParameter("no input sentences (pass arguments or pipe lines on stdin)")
    pyfunc = load_registered(model, "translation")
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
        typer.echo(f"error: --window {window}: the model was trained on the last {trained} turns and uses no more",
                   err=True)
        raise typer.Exit(2)
    return window or trained


@app.command()
def chat(
    model: Annotated[str, typer.Option("--model", "-m", help="NAME@ALIAS (e.g. chatbot-dailydialog@challenger), NAME/VERSION or a model URI")],
    window: Annotated[int | None, typer.Option(min=1, help="previous turns sent as context (default and most: what the model was trained with)")] = None,
) -> None:
    """Chat with a registered chatbot. Interactive on a terminal (/reset, /quit, Ctrl-D);
    with piped stdin, one reply per input line, the conversation carried across lines."""
    import pandas as pd

    pyfunc = load_registered(model, "chatbot")
    window = _chat_window(pyfunc, window)
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
def tune(
    experiment: Annotated[str, typer.Argument(help="experiment to sweep; the space is conf/tune/<experiment>.yaml")],
    num_samples: Annotated[int | None, typer.Option(min=1, help="trials (default: the sweep file's)")] = None,
    resume: Annotated[bool, typer.Option(help="continue the interrupted sweep: finished trials stay, errored ones rerun")] = False,
) -> None:
    """Sweep an experiment on the Ray cluster ($RAY_ADDRESS, else local) and write the winner to conf/tuned/."""
    from seqforge.config import ConfigError, tuned_file
    from seqforge.tune import run_sweep

    try:
        summary = run_sweep(experiment, num_samples=num_samples, resume=resume)
    except (ConfigError, RuntimeError) as err:  # bad sweep file, nothing to resume, no trial succeeded
        typer.echo(f"tune: {err}", err=True)
        raise typer.Exit(1) from None
    best, counts = summary["best"], summary["counts"]
    typer.echo(f"{summary['sweep']}: {sum(counts.values())} trials ({counts['completed']} completed, "
               f"{counts['stopped_early']} stopped early, {counts['failed']} failed); best {summary['metric']} "
               f"{best['value']:.4g} (trial {best['trial_id']}) -> {tuned_file(experiment)}")


@app.command()
def study(
    report_only: Annotated[bool, typer.Option(help="rewrite reports/study/ from metrics/study.json; no training")] = False,
) -> None:
    """Measure the classic claims (conf/study.yaml): train every model, write metrics/study.json and reports/study/."""
    from seqforge.config import ConfigError
    from seqforge.study import REPORT_DIR, SUMMARY_FILE, rewrite_report, run_study
    from seqforge.tracking import TrackingError

    try:
        summary = rewrite_report() if report_only else run_study()
    except (ConfigError, TrackingError, FileNotFoundError) as err:
        raise _fail("study", err) from None
    for claim in summary["claims"]:
        typer.echo(f"[{claim['verdict']}] {claim['claim']}\n    {claim['measured']}")
    typer.echo(f"{summary['study']}: {len(summary['models'])} models in {summary['wall_seconds'] / 60:.1f} min -> "
               f"{SUMMARY_FILE}, {REPORT_DIR / 'README.md'}")


@app.command()
def models(name: Annotated[str | None, typer.Argument(help="registered model name; all when omitted")] = None) -> None:
    """Table of registered models and versions: aliases, architecture, metrics, data version."""
    from rich.console import Console
    from rich.table import Table

    from seqforge.lifecycle import list_versions

    rows = list_versions(_client(), name)
    table = Table(title=f"registered models — {_tracking()}")
    for col in ("name", "version", "aliases", "experiment", "metric", "chrF", "data version", "created"):
        table.add_column(col)
    for r in rows:
        value = "" if r["value"] is None else f"{r['metric']} {r['value']:.2f}"
        table.add_row(r["name"], str(r["version"]), r["aliases"], r["arch"], value,
                      "" if r["chrf"] is None else f"{r['chrf']:.2f}", r["data_version"], r["created"])
    Console().print(table)


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
    from seqforge.lifecycle import PromotionError
    from seqforge.lifecycle import promote as do_promote

    try:
        done = do_promote(_client(), name, version=version, from_alias=from_alias, to_alias=to_alias,
                          force=force, reason=reason)
    except PromotionError as err:
        typer.echo(f"promote: {err}", err=True)
        raise typer.Exit(1) from None
    before = f"v{done.previous} ({done.metric}={done.previous_value})" if done.previous else "nobody"
    typer.echo(f"{done.name}@{done.alias}: v{done.version} ({done.metric}={done.candidate_value}), "
               f"was {before}{' [forced]' if done.forced else ''}")


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="NAME@ALIAS or NAME/VERSION")],
    port: Annotated[int, typer.Option(help="port on --host")] = 5001,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="server processes (default: one per CPU core)")] = os.cpu_count() or 1,
) -> None:
    """Serve a registered model with MLflow's scoring server (POST /invocations), alias resolved now.

    `--workers` processes each hold the model and decode one request at a time with an equal share of
    the cores as torch threads; concurrent requests queue in each process."""
    import subprocess

    threads = str(max(1, (os.cpu_count() or 1) // workers))  # torch reads these when a server process starts
    # MLflow starts `uvicorn` by name: put this interpreter's bin/ first so an unactivated venv works
    env = {**os.environ, "MLFLOW_TRACKING_URI": _tracking(), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", _model_uri(model), "--env-manager", "local",
           "--host", host, "--port", str(port), "--workers", str(workers)]
    raise typer.Exit(subprocess.run(cmd, env=env, check=False).returncode)


@app.command()
def ui(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5000) -> None:
    """Start the MLflow UI on the project's store."""
    import subprocess

    uri = _tracking()
    if uri.startswith("http"):
        typer.echo(f"the store is a tracking server already: open {uri}")
        return
    subprocess.run([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                    "--host", "127.0.0.1", "--port", str(port)], check=False)


stack_app = typer.Typer(no_args_is_help=True, help="The team stack on this machine: PostgreSQL, S3 (SeaweedFS), "
                        "MLflow server with auth (conf/stack.yaml, infra/README.md).")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up() -> None:
    """Start the stack (or keep it running); prints the `export` lines its clients need (also in <dir>/env.sh)."""
    from seqforge.config import ConfigError
    from seqforge.stack import StackError, exports, load_stack, up

    try:
        cfg = load_stack()
        typer.echo(f"starting the stack in {cfg.dir}/ (logs in {cfg.dir}/logs/) ...", err=True)
        variables = up(cfg)
    except (ConfigError, StackError) as err:
        raise _fail("stack up", err) from None
    typer.echo(exports(variables), nl=False)
    typer.echo(f"stack up: MLflow {cfg.tracking_uri} (user {cfg.mlflow.admin_username}), S3 {cfg.s3_endpoint} "
               f"bucket {cfg.s3.bucket}, PostgreSQL {cfg.host}:{cfg.postgres.port}; DVC remote "
               f"'{cfg.dvc.remote}' is the default. Export the lines above, or: source {cfg.dir}/env.sh", err=True)


@stack_app.command("env")
def stack_env() -> None:
    """Print the `export` lines for the running stack (`eval "$(seqforge stack env)"`)."""
    from seqforge.config import ConfigError
    from seqforge.stack import credentials, env, exports, load_stack

    try:
        cfg = load_stack()
    except ConfigError as err:
        raise _fail("stack env", err) from None
    typer.echo(exports(env(cfg, credentials(cfg))), nl=False)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the stack; its data stays in the stack's dir for the next `stack up`."""
    from seqforge.config import ConfigError
    from seqforge.stack import StackError, down, load_stack

    try:
        down(load_stack())
    except (ConfigError, StackError) as err:
        raise _fail("stack down", err) from None
    typer.echo("stack down", err=True)


def _tracking() -> str:
    from seqforge.tracking import tracking_uri

    return tracking_uri()


def _client():
    import mlflow

    mlflow.set_tracking_uri(_tracking())
    return mlflow.MlflowClient()


def main() -> None:  # pragma: no cover - console entry point
    """The `seqforge` command. An MLflow store that refuses or fails a request (wrong credentials: 401,
    a missing model) ends any command with one line, not a traceback."""
    from mlflow.exceptions import MlflowException

    from seqforge.tracking import first_line

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app()
    except MlflowException as err:
        sys.exit(f"seqforge: the MLflow store at {_tracking()} refused: {first_line(err, 500)}")


if __name__ == "__main__":
    main()
