"""Bring your own data: `seqforge corpus add|list|remove` and `seqforge task add|list|remove` edit conf/.

A corpus is validated by reading it (its format's reader), copied into `data/<name>/`, recorded with the
SHA-256 of its files in `conf/corpora/<name>.yaml` and pinned as its own output in `data.dvc`. A task names
a corpus, a language pair and experiment templates; `conf/pipeline.yaml` (what the dvc.yaml files iterate
over) is regenerated. A bad input is one `CatalogError` naming the file, line or option, and leaves nothing
half-written. Removing a task removes its experiments and sweeps, not its registered versions in MLflow.
"""


class CatalogError(ValueError):
    """A corpus or task cannot be added or removed; the message names the file, line or option."""
