"""A model version registered by the code before the registries layout (its pickle names
`seqforge.registry.Seq2SeqModel`, its code rides in `code_paths`) still loads and translates: in a bare
fresh process (MLflow puts the version's own code first) and through today's `seqforge translate`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "d00ba9a"  # the last commit with the flat layout (seqforge/registry.py packaged models)
ADDED_SINCE = {"optim": ("optimizer", "momentum")}  # experiment keys today's code writes that BEFORE's refuses

PREDICT = """
import sys, mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
print(sys.modules[type(model.unwrap_python_model()).__module__].__file__)
print("\\n".join(model.predict(pd.DataFrame({"source": sys.argv[3:]}))["translation"]))
"""


@pytest.mark.slow
def test_a_version_registered_before_the_move_loads_and_translates(smoke_copy, tmp_path: Path) -> None:
    if subprocess.run(["git", "cat-file", "-e", f"{BEFORE}^{{commit}}"], cwd=ROOT).returncode:
        pytest.skip(f"commit {BEFORE} is not in this clone's history")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "archive", BEFORE, "src/seqforge", "conf"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    repo, env = smoke_copy
    # the model today's code trained, described as the old code would have: without the keys added since
    meta_file = repo / "models" / "gru_bahdanau" / "model.json"
    meta = json.loads(meta_file.read_text())
    for key in ADDED_SINCE["optim"]:
        meta["experiment"]["optim"].pop(key)
    meta_file.write_text(json.dumps(meta))
    today_version = json.loads((repo / "reports" / "gru_bahdanau" / "registered.json").read_text())["version"]
    # the old code reads the old configuration (today's has keys it never knew), on the smoke profile
    shutil.move(repo / "conf", tmp_path / "conf-today")
    shutil.copytree(old / "conf", repo / "conf")
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: default", "profile: smoke", 1))
    run(
        [sys.executable, "-c", "from seqforge.registry import register_experiment as r; r('gru_bahdanau')"],
        repo,
        {**env, "PYTHONPATH": str(old / "src")},
    )
    shutil.rmtree(repo / "conf")
    shutil.move(tmp_path / "conf-today", repo / "conf")
    record = json.loads((repo / "reports" / "gru_bahdanau" / "registered.json").read_text())
    version = f"models:/{record['name']}/{record['version']}"
    store = f"sqlite:///{repo / 'mlflow.db'}"
    sources = ["A man is riding a bike.", "Two dogs play in the snow near a red house."]

    fresh = run([sys.executable, "-c", PREDICT, store, version, *sources], repo, env).stdout.splitlines()
    old_class = Path(fresh[0])  # the old class, from the version's own code (not this checkout's shim)
    assert old_class.name == "registry.py" and ROOT not in old_class.parents and "code" in old_class.parts
    assert all(fresh[1:]) and len(fresh) == 3 and fresh[1] != fresh[2]

    # today's `translate` searches with today's code: the old version translates as the version today's code
    # registered from the same weights (the old code's search, in the fresh process, has since changed)
    today = run(["seqforge", "translate", "--model", f"{record['name']}/{record['version']}", *sources], repo, env)
    same_weights = run(["seqforge", "translate", "--model", f"{record['name']}/{today_version}", *sources], repo, env)
    assert today.stdout.splitlines() == same_weights.stdout.splitlines()
    assert all(today.stdout.splitlines()) and len(set(today.stdout.splitlines())) == 2
