"""The documentation: every generated block is what its committed inputs give (so a figure changes only by
rerunning what measures it), the tables name tests that assert what they show, every configuration key is
described, the README stays short, and the built site navigates in a browser."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import sys
import threading
from functools import partial

import pytest

from docs.gen import tables
from docs.gen.__main__ import stale
from docs.gen.blocks import BLOCKS, render
from docs.gen.config_ref import config_reference
from docs.gen.markers import block_names, pages, rendered
from helpers import ROOT

SCREENSHOTS = ROOT / "test-artifacts"


def test_every_generated_block_is_what_its_inputs_give() -> None:
    assert stale() == [], "run `make docs`"


def test_a_planted_edit_of_a_figure_is_caught() -> None:
    """A figure typed into a generated block by hand differs from what the generator writes: the check sees it
    and `make docs` puts the measured one back."""
    page = ROOT / "docs" / "results" / "index.md"
    text = page.read_text()
    block = text.split("<!-- gen:results-translation -->\n", 1)[1].split("<!-- /gen:results-translation -->")[0]
    figure = next(cell for cell in block.split("|") if cell.strip().startswith("**") and cell.strip()[2:3].isdigit())
    planted = text.replace(figure, " **99.99** ", 1)
    assert planted != text and rendered(planted, render) != planted
    assert rendered(planted, render) == text


def test_every_block_a_page_names_exists_and_every_block_is_used() -> None:
    used = [name for page in pages(ROOT) for name in block_names(page.read_text())]
    assert set(used) <= set(BLOCKS) and set(BLOCKS) <= set(used)


def test_the_tables_name_tests_that_assert_what_they_show() -> None:
    assert tables.guarded() == []


def test_every_configuration_key_is_described() -> None:
    reference = config_reference()  # raises MissingDescription naming each field without a comment
    assert "`train.budget`" in reference and "`model.attention`" in reference and "`decode.beam_size`" in reference


def test_the_readme_is_short_and_history_stays_out_of_guides() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(readme) <= 200 and max(len(line) for line in readme) <= 200
    guides = [*(ROOT / "docs" / "guides").glob("*.md"), *(ROOT / "docs" / "concepts").glob("*.md")]
    dated = [
        f"{p.name}: {line[:80]}"
        for p in guides
        for line in p.read_text().splitlines()
        if re.search(r"\b20\d\d-\d\d-\d\d\b", line)
    ]
    assert dated == [], "dated measurements belong in docs/history.md"


@pytest.mark.slow
def test_the_built_site_navigates_to_a_results_table_and_a_guide_in_chromium(tmp_path) -> None:
    from selenium.webdriver.common.by import By

    from test_tracking_server import chromium, wait_for_text

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "docs.gen", "--check"], cwd=ROOT, check=True)
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SCREENSHOTS.mkdir(exist_ok=True)
    driver = chromium(tmp_path / "chromium")
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait_for_text(driver, "seqforge", "Getting started")
        driver.find_element(By.LINK_TEXT, "Results").click()
        wait_for_text(driver, "Translation: Multi30k en→de", "test BLEU")
        cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "table td")]
        assert any(c.startswith("gru_bahdanau") for c in cells) and any(c.replace(".", "").isdigit() for c in cells)
        driver.save_screenshot(str(SCREENSHOTS / "docs-results.png"))
        driver.find_element(By.LINK_TEXT, "Your own data").click()
        wait_for_text(driver, "Your own data", "corpus add")
        driver.save_screenshot(str(SCREENSHOTS / "docs-guide-own-data.png"))
    finally:
        driver.quit()
        server.shutdown()
    assert (SCREENSHOTS / "docs-results.png").stat().st_size > 10_000
