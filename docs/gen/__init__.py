"""The generated parts of the documentation. Each block between `<!-- gen:NAME -->` and `<!-- /gen:NAME -->` in
a page of `docs/` or in `README.md` is written by the function registered as NAME (`blocks.BLOCKS`): references
from the code (the Typer app, the pydantic schemas, the layer order of `tests/test_layout.py`), tables from
`docs/tables/`, and every figure from `metrics/` and `reports/` as git's index holds them (`committed`).
`python -m docs.gen` rewrites the blocks; `python -m docs.gen --check` (and `tests/test_docs.py`) fails when a
page differs from what its inputs give, so a figure changes only when what measures it is rerun."""
