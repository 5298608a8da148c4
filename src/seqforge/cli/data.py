"""Commands for data and configuration: fetch, sync, profile, corpus add|list|remove, task add|list|remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqforge.catalog import CatalogError
from seqforge.cli.app import _fail, app
from seqforge.cli.output import AsJson, show
from seqforge.cli.training import print_plans, tokenize_now
from seqforge.config.base import ConfigError, set_profile
from seqforge.config.index import write_index
from seqforge.core import paths
from seqforge.corpora.base import CorpusError
from seqforge.corpora.fetch import FetchError, fetch_all, generated_fresh, sha256
from seqforge.corpora.pins import pin
from seqforge.corpora.registry import corpus_format, load_corpus


def parse_columns(text: str | None) -> dict[str, str | int]:
    """`--columns ko=0,en=1` -> {"ko": 0, "en": 1}; names stay strings (`en=english`, `turns=dialog`)."""
    columns: dict[str, str | int] = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, col = item.partition("=")
        if not sep or not key.strip() or not col.strip():
            raise CatalogError(f"--columns: expected LANG=COL, got {item!r}")
        columns[key.strip()] = int(col) if col.strip().isdigit() else col.strip()
    return columns


def parse_split(text: str | None) -> dict[str, int]:
    """`--split validation=500,test=500` -> sizes of the held-out sets."""
    sizes = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if key not in ("validation", "test") or not sep or not value.isdigit() or int(value) < 1:
            raise CatalogError(f"--split: expected validation=N,test=N with N >= 1, got {item!r}")
        sizes[key] = int(value)
    return sizes


@app.command()
def fetch(
    mirror: Annotated[Path | None, typer.Option(help="offline mirror folder (default: $SEQFORGE_DATA_MIRROR)")] = None,
) -> None:
    """Fetch and verify the raw corpora of every task into data/ (official source or mirror)."""
    from seqforge.tasks.registry import load_task, task_names

    try:
        write_index()
        corpora = [load_corpus(c) for c in sorted({load_task(t).corpus for t in task_names()})]
        generated = {
            c.name
            for c in corpora
            if corpus_format(c.format).params is not None and generated_fresh(c, paths.raw_dir(c.name))
        }
        fetched = fetch_all(corpora, paths.DATA, mirror=mirror)
        for corpus in corpora:
            folder = paths.raw_dir(corpus.name)
            typer.echo(
                f"{len(fetched[corpus.name])} {corpus.name} files "
                f"{'generated' if corpus.name in generated else 'verified'} in {folder}"
            )
            if corpus.name in generated and not corpus.files:
                pins = "".join(f"\n  {p.name}: {sha256(p)}" for p in fetched[corpus.name])
                typer.echo(f"{corpus.name}: unpinned; pin its bytes in conf/corpora/{corpus.name}.yaml:\nfiles:{pins}")
            if corpus.name in generated:  # new or regenerated: pinned in data.dvc, as `corpus add` does
                typer.echo(f"{corpus.name}: {pin(folder)}")
    except (ConfigError, CorpusError, FetchError) as err:
        raise _fail("fetch", err) from None


@app.command()
def sync() -> None:
    """Regenerate conf/pipeline.yaml (the task and experiment lists of dvc.yaml) from conf/."""
    try:
        changed = write_index()
    except ConfigError as err:
        raise _fail("sync", err) from None
    typer.echo("conf/pipeline.yaml " + ("updated" if changed else "up to date"))


corpus_app = typer.Typer(
    no_args_is_help=True, help="Corpora: your own data, read, recorded in conf/corpora/, pinned by DVC."
)


task_app = typer.Typer(no_args_is_help=True, help="Tasks: a corpus, a language pair and experiments, in conf/tasks/.")
app.add_typer(corpus_app, name="corpus")
app.add_typer(task_app, name="task")


@corpus_app.command("add")
def corpus_add(
    name: Annotated[str, typer.Argument(help="corpus name (data/<name>/, conf/corpora/<name>.yaml)")],
    format: Annotated[
        str, typer.Option("--format", help="tsv, csv, jsonl, parquet, text_pair, hf, multi30k, dailydialog")
    ],
    source: Annotated[
        list[str], typer.Option("--source", help="file, folder or Hugging Face dataset (text_pair: give it twice)")
    ],
    columns: Annotated[
        str | None,
        typer.Option(help="LANG=COL,... (0-based index, header name or JSON field; turns=FIELD for dialogues)"),
    ] = None,
    split: Annotated[str | None, typer.Option(help="held-out sizes of a one-file corpus: validation=N,test=N")] = None,
    seed: Annotated[int, typer.Option(help="seed of the held-out carving")] = 0,
) -> None:
    """Read and validate a corpus, copy it into data/, record it in conf/corpora/ and pin it with DVC."""
    from seqforge.catalog.corpora import add_corpus

    try:
        _, summary = add_corpus(name, format, source, parse_columns(columns), parse_split(split), seed)
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
    experiments: Annotated[
        str | None, typer.Option(help="experiment templates, comma-separated (default per kind)")
    ] = None,
    budget: Annotated[
        str | None, typer.Option(help="training time per experiment on this machine, e.g. 20m, 1h30m")
    ] = None,
    updates: Annotated[int | None, typer.Option(help="or a number of optimizer updates per experiment")] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="prepare and tokenize it now, then print each experiment's plan")
    ] = False,
) -> None:
    """Add a task with experiments built from templates; the next `dvc repro` trains and registers it."""
    from seqforge.catalog.tasks import add_task

    try:
        written, sized = add_task(name, kind, corpus, src, tgt, experiments, budget=budget, updates=updates)
    except CatalogError as err:
        raise _fail("task add", err) from None
    for line in sized:
        typer.echo(line)
    for path in written:
        typer.echo(f"wrote {path}")
    given = f"--budget {budget}" if budget else f"--updates {updates}" if updates else None
    typer.echo(f"training budget: {given or 'the project default (train.budget in conf/config.yaml)'} per experiment")
    if plan:
        tokenize_now(name, "task add")
        print_plans(name, "task add")
    else:
        typer.echo(
            f"`dvc repro tokenize@{name}` then `seqforge plan {name}` show the updates, evaluations and time "
            "the budget buys on this machine (`task add --plan` does both); each train stage prints its plan"
        )
    typer.echo(
        f"`dvc repro` now {'trains' if plan else 'prepares, trains'}, evaluates and registers {name} "
        f"(model name {name})"
    )


@app.command()
def profile(name: Annotated[str, typer.Argument(help="default, smoke, gpu, or any conf/profiles/<name>.yaml")]) -> None:
    """Switch the pipeline profile (the `profile` key of conf/config.yaml)."""
    try:
        set_profile(name)
        write_index()
    except ConfigError as err:
        raise _fail("profile", err) from None
    typer.echo(f"profile: {name}")


@task_app.command("list")
def task_list(as_json: AsJson = False) -> None:
    """The tasks in conf/tasks/: kind, corpus, languages and experiments."""
    from seqforge.catalog.tasks import task_table

    try:
        show("tasks (conf/tasks/)", task_table(), as_json)
    except ConfigError as err:
        raise _fail("task list", err) from None


@task_app.command("remove")
def task_remove(names: Annotated[list[str], typer.Argument(help="task names")]) -> None:
    """Remove tasks with their experiments and sweeps; their registered versions stay in MLflow."""
    from seqforge.catalog.tasks import remove_task

    for name in names:
        try:
            removed = remove_task(name)
        except (CatalogError, ConfigError) as err:
            raise _fail("task remove", err) from None
        typer.echo(f"removed task {name}: {', '.join(map(str, removed))}")
    typer.echo("conf/pipeline.yaml updated; registered versions stay in MLflow (`seqforge models`)")


@corpus_app.command("list")
def corpus_list(as_json: AsJson = False) -> None:
    """The corpora in conf/corpora/: format, languages, whether the files are here, the tasks using each."""
    from seqforge.catalog.corpora import corpus_table

    try:
        show("corpora (conf/corpora/, pinned in data.dvc)", corpus_table(), as_json)
    except ConfigError as err:
        raise _fail("corpus list", err) from None


@corpus_app.command("remove")
def corpus_remove(names: Annotated[list[str], typer.Argument(help="corpus names")]) -> None:
    """Remove corpora no task uses: their record, their data.dvc output and their files in data/."""
    from seqforge.catalog.corpora import remove_corpus

    for name in names:
        try:
            done = remove_corpus(name)
        except CatalogError as err:
            raise _fail("corpus remove", err) from None
        typer.echo(", ".join(done))
