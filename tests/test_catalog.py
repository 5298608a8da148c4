"""`seqforge corpus add` / `task add`: every format read from small files written here, and every
bad input answered by one error naming the file, line or option, with nothing left behind."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from seqforge.catalog import CatalogError
from seqforge.catalog.corpora import add_corpus
from seqforge.catalog.tasks import add_task
from seqforge.cli.data import parse_columns, parse_split
from seqforge.corpora.registry import load_corpus
from seqforge.experiments.config import load_experiment
from seqforge.tasks.registry import load_task

DATA = Path(__file__).parent / "data"
PAIRS = [line.split("\t") for line in (DATA / "ko_en.tsv").read_text(encoding="utf-8").splitlines()]


def add(name: str, fmt: str, *sources, columns: str | None = None, split: str | None = None):
    """`seqforge corpus add` with its options as a user writes them."""
    return add_corpus(
        name,
        fmt,
        [str(s) for s in sources],
        parse_columns(columns),
        parse_split(split),
        conf_dir=Path("conf"),
        data_dir=Path("data"),
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def sources(tmp_path) -> dict[str, Path]:
    """The same 50 Korean-English pairs in every format."""
    src = tmp_path / "src"
    src.mkdir()
    ko, en = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    files = {
        "tsv": write(src / "pairs.tsv", "".join(f"{k}\t{e}\n" for k, e in PAIRS)),
        "csv": write(src / "pairs.csv", "korean,english\n" + "".join(f'"{k}","{e}"\n' for k, e in PAIRS)),
        "jsonl": write(
            src / "pairs.jsonl",
            "".join(json.dumps({"translation": {"ko": k, "en": e}}, ensure_ascii=False) + "\n" for k, e in PAIRS),
        ),
        "ko": write(src / "corpus.ko", "\n".join(ko) + "\n"),
    }
    with gzip.open(src / "corpus.en.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(en) + "\n")
    files["en"] = src / "corpus.en.gz"
    import pandas as pd

    pd.DataFrame({"ko": ko, "en": en}).to_parquet(src / "pairs.parquet")
    files["parquet"] = src / "pairs.parquet"
    return files


SPLIT = "validation=5,test=5"


@pytest.mark.parametrize(
    ("fmt", "keys", "columns"),
    [
        ("tsv", ["tsv"], "ko=0,en=1"),
        ("csv", ["csv"], "ko=korean,en=english"),
        ("jsonl", ["jsonl"], "ko=translation.ko,en=translation.en"),
        ("parquet", ["parquet"], "ko=ko,en=en"),
        ("text_pair", ["ko", "en"], None),
    ],
)
def test_every_format_reads_the_same_pairs(project, sources, fmt, keys, columns) -> None:
    from seqforge.stages.prepare import prepare_task

    corpus, summary = add("kopairs", fmt, *(sources[k] for k in keys), columns=columns, split=SPLIT)
    assert sorted(corpus.languages) == ["en", "ko"] and "50 pairs" in summary[0]
    assert (Path("data/kopairs") / next(iter(corpus.files))).is_file()
    assert load_corpus("kopairs", Path("conf")) == corpus
    add_task("ko-en", "translation", "kopairs", "ko", "en", "gru_bahdanau", conf_dir=Path("conf"))
    assert load_task("ko-en", Path("conf")).tokenizer.library == "sentencepiece"  # CJK default
    assert load_experiment("ko-en_gru_bahdanau", Path("conf")).model.arch == "rnn"
    stats = prepare_task("ko-en")
    assert {s: stats[s]["kept"] for s in stats} == {"train": 40, "validation": 5, "test": 5}
    from datasets import load_from_disk

    splits = load_from_disk("artifacts/prepared/ko-en")
    held = set(splits["validation"]["source"]) | set(splits["test"]["source"])
    assert not held & set(splits["train"]["source"])  # no source sentence in two splits
    assert ("그는 커피를 마십니다.", "He drinks coffee.") in {
        (s, t) for split in splits.values() for s, t in zip(split["source"], split["target"], strict=True)
    }


def test_hf_save_to_disk_folder_and_its_splits(project, tmp_path) -> None:
    from datasets import Dataset, DatasetDict

    rows = [{"translation": {"ko": k, "en": e}} for k, e in PAIRS]
    DatasetDict(
        {
            "train": Dataset.from_list(rows[:40]),
            "validation": Dataset.from_list(rows[40:45]),
            "test": Dataset.from_list(rows[45:]),
        }
    ).save_to_disk(str(tmp_path / "hf"))
    corpus, summary = add("kohf", "hf", tmp_path / "hf", columns="ko=translation.ko,en=translation.en")
    assert sorted(corpus.files) == ["test.parquet", "train.parquet", "validation.parquet"]
    assert "train 40, validation 5, test 5" in summary[0]


def test_hf_hub_dataset_offline_and_not_cached(project, monkeypatch) -> None:
    import datasets.config
    import huggingface_hub.constants

    # offline as `HF_HUB_OFFLINE=1` makes it (both libraries read it once, at import): no network timeouts first
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(project / "empty-hf-home"))
    with pytest.raises(CatalogError, match=r"Hugging Face dataset 'someone/ko-en-pairs' is not available.*[Oo]ffline"):
        add("hub", "hf", "someone/ko-en-pairs", columns="ko=ko,en=en")
    assert not Path("data/hub").exists() and not Path("conf/corpora/hub.yaml").exists()


def test_multi30k_and_dailydialog_folders(project, mirror) -> None:
    corpus, summary = add("m30k", "multi30k", mirror / "multi30k")
    assert corpus.languages == ["cs", "de", "en", "fr"] and "train 29000" in summary[0]
    corpus, summary = add("dd", "dailydialog", mirror / "dailydialog")
    assert corpus.dialogue and "dialogues" in summary[0]


@pytest.mark.parametrize(
    ("content", "columns", "split", "message"),
    [
        ("a\tb\nc\td\te\n", "ko=0,en=1", SPLIT, r"bad\.tsv:2: expected 2 columns \(as on the first row\), found 3"),
        (b"a\tb\nc\t\xff\xfe\n", "ko=0,en=1", SPLIT, r"bad\.tsv:2:3: invalid UTF-8"),
        ("", "ko=0,en=1", SPLIT, r"bad\.tsv: empty file"),
        ("a\tb\n", "ko=0,en=5", SPLIT, r"bad\.tsv:1: column '5' for 'en' not in the 2 columns"),
        (
            "".join(f"{k}\t{e}\n" for k, e in PAIRS),
            "ko=0,en=1",
            "validation=30,test=30",
            r"validation=30 \+ test=30 = 60 held-out items, but the corpus has only 50 distinct ones",
        ),
        ("".join(f"{k}\t{e}\n" for k, e in PAIRS), "ko=0,en=1", None, r"comes in one piece: give held-out sizes"),
    ],
)
def test_bad_corpora_name_file_line_and_leave_nothing(project, tmp_path, content, columns, split, message) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CatalogError, match=message) as err:
        add("bad", "tsv", bad, columns=columns, split=split)
    assert "bad.tsv:" not in str(err.value) or str(err.value).startswith(f"{bad.resolve()}:")  # the user's path
    assert not Path("data/bad").exists() and not Path("conf/corpora/bad.yaml").exists()
    assert not any(Path("artifacts").glob(".scratch-*"))


def test_misaligned_text_pair(project, sources, tmp_path) -> None:
    short = write(tmp_path / "short.en", "only one line\n")
    with pytest.raises(CatalogError, match=r"corpus\.ko has 50 lines but .*short\.en has 1 lines"):
        add("pair", "text_pair", sources["ko"], short, split=SPLIT)


def test_bad_options_and_duplicates(project, sources) -> None:
    with pytest.raises(CatalogError, match=r"--format: unknown format 'xlsx' \(formats: .*tsv, csv"):
        add("x", "xlsx", sources["tsv"])
    with pytest.raises(CatalogError, match=r"--columns: format tsv needs LANG=COL"):
        add("x", "tsv", sources["tsv"], split=SPLIT)
    add("kopairs", "tsv", sources["tsv"], columns="ko=0,en=1", split=SPLIT)
    with pytest.raises(CatalogError, match=r"corpora/kopairs\.yaml: a corpus named 'kopairs' exists already"):
        add("kopairs", "tsv", sources["tsv"], columns="ko=0,en=1", split=SPLIT)
    with pytest.raises(CatalogError, match=r"--src: language 'ja' is not in corpus kopairs \(its languages: ko, en\)"):
        add_task("ja-en", "translation", "kopairs", "ja", "en", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"--corpus: .*unknown corpus 'nope'"):
        add_task("t", "translation", "nope", "ko", "en", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"tasks/translation\.yaml: a task named 'translation' exists already"):
        add_task("translation", "translation", "kopairs", "ko", "en", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"--corpus: kopairs is a parallel corpus; a chatbot needs dialogues"):
        add_task("ko-chat", "chatbot", "kopairs", "ko", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"--corpus: dailydialog is a dialogue corpus; translation needs"):
        add_task("dd-en-de", "translation", "dailydialog", "en", "de", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"task chat2: invalid configuration\n  lang: String should match"):
        add_task("chat2", "chatbot", "dailydialog", "english!", conf_dir=Path("conf"))
    with pytest.raises(CatalogError, match=r"--experiments: no experiment template 'rnn_big'"):
        add_task("ko-en", "translation", "kopairs", "ko", "en", "rnn_big", conf_dir=Path("conf"))
    assert not Path("conf/tasks/ko-en.yaml").exists()
    add_task("ko-en", "translation", "kopairs", "ko", "en", conf_dir=Path("conf"))
    index = yaml.safe_load(Path("conf/pipeline.yaml").read_text())
    assert index["tasks"]["ko-en"] == {"corpus": "kopairs"}
    assert index["experiments"]["ko-en_transformer"] == {"task": "ko-en"}


def test_cli_prints_one_line_not_a_traceback(project, sources) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqforge.cli",
            "corpus",
            "add",
            "x",
            "--format",
            "tsv",
            "--source",
            str(sources["tsv"]),
            "--columns",
            "ko=0,xx=9",
            "--split",
            SPLIT,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("corpus add: ") and "column '9' for 'xx'" in proc.stderr
