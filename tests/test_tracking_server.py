"""Tracking-server mode and the MLflow UI in a real browser.

The session's real `mlflow server` on loopback (SQLite backend, artifacts stored and served by the
server). The smoke pipeline's MLflow stages (train -> evaluate -> register) ran against it through
`MLFLOW_TRACKING_URI` (`trained_on_server`), the model was promoted to @champion, and headless
Chromium checks that the UI shows the model, its alias, the run's BLEU and an attention heatmap.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, run

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(os.environ.get("SEQFORGE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
NAME = "translation-en-de"


@pytest.fixture(scope="module")
def served_model(trained_on_server, tracking_server):
    """(repo, env, server URL, artifact root): the smoke repo copy whose gru_bahdanau stages ran on the
    session's tracking server (`trained_on_server`: through a 30 s outage), promoted to @champion."""
    repo, env, _ = trained_on_server
    return repo, env, tracking_server.url, tracking_server.artifacts


RUN_PAGE = """
import json, mlflow
client = mlflow.MlflowClient()
version = client.get_model_version_by_alias('translation-en-de', 'champion')
run = client.get_run(version.run_id)
print(json.dumps({
    'version': version.version, 'description': version.description,
    'model_description': client.get_registered_model('translation-en-de').description,
    'experiment_id': run.info.experiment_id, 'run_id': run.info.run_id, 'artifact_uri': run.info.artifact_uri,
    'params': run.data.params, 'metrics': run.data.metrics, 'tags': run.data.tags,
    'attention': [a.path for a in client.list_artifacts(run.info.run_id, 'attention')],
    'evaluation': [a.path for a in client.list_artifacts(run.info.run_id, 'evaluation')],
    'inputs': [{'name': d.dataset.name, 'digest': d.dataset.digest, 'profile': d.dataset.profile,
                'tags': {t.key: t.value for t in d.tags}} for d in run.inputs.dataset_inputs],
}))
"""


def run_page(repo: Path, env: dict) -> dict:
    """What the champion's run page holds, read through the server's REST API."""
    return json.loads(run([sys.executable, "-c", RUN_PAGE], repo, env).stdout.strip().splitlines()[-1])


def test_pipeline_tracks_and_registers_through_the_server(served_model) -> None:
    repo, env, url, artifacts = served_model
    page = run_page(repo, env)
    # everything went to the server: its artifact store, none of the local store
    assert page["artifact_uri"].startswith("mlflow-artifacts:/")
    assert list(artifacts.rglob("sample_00.png")) and not (repo / "mlflow.db").exists()
    assert not (repo / "mlartifacts").exists()

    assert page["version"] == "1" and {"test_bleu", "test_chrf", "val_bleu", "val_loss"} <= set(page["metrics"])
    assert int(page["params"]["model.num_parameters"]) > 0
    assert page["tags"]["signature.bleu"].startswith("nrefs:1|case:mixed")
    assert page["attention"] == [f"attention/sample_{i:02d}.png" for i in range(4)]
    assert "evaluation/samples.json" in page["evaluation"]

    (dvc_md5,) = (
        o["md5"] for o in yaml.safe_load((repo / "data.dvc").read_text())["outs"] if o["path"] == "data/multi30k"
    )
    inputs = {i["name"]: i for i in page["inputs"]}
    assert set(inputs) == {"multi30k-train", "multi30k-validation", "multi30k-test"}
    assert all(
        i["tags"]["dvc_md5"] == dvc_md5
        and i["tags"]["data_version"].startswith("multi30k-")
        and i["tags"]["mlflow.data.context"]
        for i in inputs.values()
    )
    kept = json.loads((repo / "metrics" / "data_translation.json").read_text())
    for split in ("train", "validation", "test"):  # the pairs the stages used, not the raw files
        assert json.loads(inputs[f"multi30k-{split}"]["profile"])["num_rows"] == kept[split]["kept"]

    description = page["description"]
    assert "bidirectional GRU encoder-decoder" in description and "bahdanau attention" in description
    assert f"bleu {page['metrics']['test_bleu']}" in description and "M parameters" in description
    assert "`source`" in page["model_description"]

    cli = run(["seqforge", "translate", "-m", f"{NAME}@champion", "A man is riding a bike."], repo, env)
    assert f"{NAME}@champion is version 1" in cli.stderr and len(cli.stdout.splitlines()) == 1


def chromium(profile_dir: Path):
    """Headless Debian Chromium through its ChromeDriver (flags for a machine with no network)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = f"not installed: {', '.join(missing)} (Debian packages chromium, chromium-driver)"
        if os.environ.get("SEQFORGE_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for_text(driver, *texts: str, timeout: float = 60) -> None:
    """Wait until the rendered page shows every one of `texts`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d) -> bool:
        body = d.find_element(By.TAG_NAME, "body").text
        return all(t in body for t in texts)

    WebDriverWait(driver, timeout).until(shown, f"page never showed all of {texts}")


def test_mlflow_ui_shows_the_champion_and_its_run_in_chromium(served_model, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    repo, env, url, _ = served_model
    page = run_page(repo, env)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver = chromium(tmp_path / "chromium")
    try:
        driver.get(f"{url}/#/models/{NAME}")
        wait_for_text(driver, NAME, "Version 1", "champion")
        driver.save_screenshot(str(SCREENSHOTS / "mlflow-ui-registered-model.png"))

        run_url = f"{url}/#/experiments/{page['experiment_id']}/runs/{page['run_id']}"
        driver.get(run_url)
        wait_for_text(driver, "test_bleu", "gru_bahdanau")
        driver.save_screenshot(str(SCREENSHOTS / "mlflow-ui-run.png"))

        driver.get(f"{run_url}/artifacts/attention/sample_00.png")
        wait_for_text(driver, "attention/sample_00.png", "sample_03.png")
        # the preview fetches the PNG through the server and shows it from a blob: URL
        WebDriverWait(driver, 60).until(
            lambda d: any(
                (img.get_attribute("src") or "").startswith("blob:")
                and d.execute_script("return arguments[0].naturalWidth", img) > 200
                for img in d.find_elements(By.TAG_NAME, "img")
            ),
            "the attention heatmap never rendered",
        )
        driver.save_screenshot(str(SCREENSHOTS / "mlflow-ui-attention.png"))
    finally:
        driver.quit()
    assert (SCREENSHOTS / "mlflow-ui-registered-model.png").stat().st_size > 10_000
