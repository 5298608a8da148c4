"""A registered version is code and plain files, not a pickle: it loads by running the project's code, and a
version whose files are not, byte for byte, the ones registered is refused in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import run

pytestmark = pytest.mark.slow

ARTIFACTS = """
import sys, mlflow
from seqforge.tracking.client import tracking_uri
c = mlflow.MlflowClient(tracking_uri())
model_id = c.get_model_version(sys.argv[1], sys.argv[2]).source.removeprefix("models:/")
print(mlflow.get_logged_model(model_id).artifact_location)
"""


def test_a_version_loads_from_code_and_refuses_files_not_as_registered(smoke_copy) -> None:
    repo, env = smoke_copy
    version = json.loads((repo / "reports" / "gru_bahdanau" / "registered.json").read_text())["version"]
    location = run([sys.executable, "-c", ARTIFACTS, "translation-en-de", str(version)], repo, env).stdout.strip()
    root = Path(location.removeprefix("file://"))
    flavor = yaml.safe_load((root / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["model_code_path"].endswith("model_code.py") and not list(root.rglob("*.pkl"))  # nothing pickled
    files = json.loads((root / flavor["artifacts"]["files"]["path"]).read_text())  # sizes and SHA-256, as registered
    assert "model.pt" in files and all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in files.values())

    translate = ["seqforge", "translate", "-m", f"translation-en-de/{version}", "A dog runs in the snow."]
    assert run(translate, repo, env).stdout.strip()

    weights = root / "artifacts" / "gru_bahdanau" / "model.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")  # one byte added where the artifacts are stored
    wide = {**env, "COLUMNS": "1000"}  # typer's error box on one line
    refused = subprocess.run(translate, cwd=repo, env=wide, capture_output=True, text=True)
    message = " ".join(refused.stderr.replace("│", " ").split())
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert re.search(r"gru_bahdanau: model\.pt: [\d,]+ of [\d,]+ bytes: not as registered, refusing to load", message)
