"""Adding a model family, a task kind or a corpus format is one module plus one conf file: `toy_plugins`
(a test module) registers one of each, and the pipeline's own code validates, builds, reads and prepares them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from datasets import load_from_disk

import toy_plugins  # noqa: F401  (registers the `copy` family, the `echo` kind and the `lines` format)
from seqforge.catalog.corpora import add_corpus
from seqforge.catalog.tasks import add_task
from seqforge.config.base import ConfigError
from seqforge.experiments.config import load_experiment
from seqforge.inference.decoding import greedy
from seqforge.models.registry import build_model, family
from seqforge.stages.prepare import prepare_task
from seqforge.tasks.registry import load_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder of its own (conf/ copied, no DVC), as the working directory."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    (tmp_path / "conf" / "config.yaml").write_text(
        (tmp_path / "conf" / "config.yaml").read_text().replace("profile: smoke", "profile: default")
    )
    (tmp_path / "conf" / "experiments" / "copy.yaml").write_text(
        "task: translation\nmodel: {arch: copy, emb_dim: 16}\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_family_from_a_test_module_validates_builds_and_learns(project: Path) -> None:
    exp = load_experiment("copy", project / "conf")
    assert type(exp.model).__name__ == "CopyCfg" and family("copy").describe(exp.model.model_dump()).startswith(
        "positional"
    )
    torch.manual_seed(0)
    model = build_model(exp.model, 20, 20)
    src = torch.randint(4, 20, (64, 6))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(src, torch.full((64,), 6), src).flatten(0, 1), src.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = torch.randint(4, 20, (8, 6))
    assert [ids[:6] for ids in greedy(model, test, torch.full((8,), 6), torch.full((8,), 7))] == test.tolist()
    (project / "conf" / "experiments" / "copy.yaml").write_text("task: translation\nmodel: {arch: cnn}\n")
    with pytest.raises(ConfigError, match=r"model.*'cnn'.*copy"):
        load_experiment("copy", project / "conf")


def test_a_format_and_a_kind_from_a_test_module_go_through_corpus_add_task_add_and_prepare(project: Path) -> None:
    source = project / "toy.txt"
    source.write_text("".join(f"sentence {i} ||| Satz {i}\n" for i in range(40)))
    corpus, summary = add_corpus(
        "toy",
        "lines",
        [str(source)],
        columns={"en": 0, "de": 1},
        split={"validation": 5, "test": 5},
        conf_dir=project / "conf",
        data_dir=project / "data",
    )
    assert corpus.languages == ["en", "de"] and summary[0].startswith("toy: 40 pairs")
    written, _ = add_task("echo-en", "echo", "toy", src="en", experiments="copy", conf_dir=project / "conf")
    assert [p.name for p in written] == ["echo-en.yaml", "echo-en_copy.yaml"]
    assert type(load_task("echo-en", project / "conf")).__name__ == "EchoTask"
    assert load_experiment("echo-en_copy", project / "conf").model.arch == "copy"
    prepare_task("echo-en")
    train = load_from_disk(str(project / "artifacts" / "prepared" / "echo-en"))["train"]
    assert len(train) == 30 and train["source"] == train["target"] and train["source"][0].startswith("sentence")
    (project / "conf" / "tasks" / "bad.yaml").write_text("kind: summarization\ncorpus: toy\n")
    with pytest.raises(ConfigError, match=r"summarization.*echo"):
        load_task("bad", project / "conf")
