import gzip
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, pairs_of
from seqforge.corpora import fetch
from seqforge.corpora.base import CorpusError
from seqforge.corpora.registry import CorpusCfg, load_corpus
from seqforge.data.batching import TokenBudgetBatchSampler
from seqforge.tasks.translation import TranslationData, TranslationTask


def write_gz(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def translation(src: str = "en", tgt: str = "de", corpus: str = "c", **data) -> TranslationTask:
    return TranslationTask(
        name="t", kind="translation", corpus=corpus, src_lang=src, tgt_lang=tgt, data=TranslationData(**data)
    )


MULTI30K_LIKE = CorpusCfg(name="m", format="multi30k", languages=["en", "de"], files={"x": ""})


def test_misaligned_files_name_both_files_and_counts(tmp_path) -> None:
    for stem, n in (("train", 3), ("val", 3), ("test_2016_flickr", 3)):
        write_gz(tmp_path / f"{stem}.en.gz", ["a"] * n)
        write_gz(tmp_path / f"{stem}.de.gz", ["x"] * (n - (stem == "val")))
    with pytest.raises(CorpusError) as err:
        pairs_of(MULTI30K_LIKE, tmp_path, translation(), tmp_path)
    assert f"{tmp_path / 'val.en.gz'} has 3 lines" in str(err.value) and "val.de.gz has 2 lines" in str(err.value)


def test_cleaning_normalises_and_counts_drops(tmp_path) -> None:
    sources = ["  A  dog\u00a0runs. ", "", "one two three four five", "x"]
    targets = ["Ein Hund läuft.", "leer", "eins", "y"]
    for stem in ("train", "val", "test_2016_flickr"):
        write_gz(tmp_path / f"{stem}.en.gz", sources)
        write_gz(tmp_path / f"{stem}.de.gz", targets)
    splits, stats = pairs_of(MULTI30K_LIKE, tmp_path, translation(max_tokens=4, max_ratio=3.0), tmp_path)
    assert splits["train"].to_list() == [
        {"source": "A dog runs.", "target": "Ein Hund läuft."},
        {"source": "x", "target": "y"},
    ]
    assert stats["train"] == {
        "raw": 4,
        "kept": 2,
        "dropped_empty": 1,
        "dropped_too_long": 1,
        "src_tokens_mean": 2.0,
        "tgt_tokens_mean": 2.0,
        "src_tokens_min": 1,
        "src_tokens_max": 3,
    }


def test_prepare_real_multi30k(mirror, tmp_path) -> None:
    raw = tmp_path / "multi30k"
    corpus = load_corpus("multi30k", ROOT / "conf")
    fetch.fetch_corpus(corpus, raw, mirror=mirror)
    splits, stats = pairs_of(corpus, raw, translation("en", "fr", "multi30k", max_train_pairs=100), tmp_path)
    assert splits["train"].num_rows == 100 and stats["train"]["dropped_cap"] > 28000
    assert splits["validation"].num_rows == 1014 and splits["test"].num_rows == 1000
    assert splits["test"][0]["target"].startswith("Un homme")


def test_fetch_verifies_checksums(mirror, tmp_path) -> None:
    corrupt = tmp_path / "mirror" / "multi30k"
    corrupt.mkdir(parents=True)
    for f in (mirror / "multi30k").iterdir():
        (corrupt / f.name).write_bytes(f.read_bytes())
    (corrupt / "val.de.gz").write_bytes(b"not the real file")
    with pytest.raises(fetch.FetchError, match=r"val\.de\.gz: SHA-256 .* does not match"):
        fetch.fetch_corpus(load_corpus("multi30k", ROOT / "conf"), tmp_path / "out", mirror=tmp_path / "mirror")


def test_missing_mirror_folder_is_named(tmp_path) -> None:
    with pytest.raises(fetch.FetchError, match=r"SEQFORGE_DATA_MIRROR=.*nowhere: no folder"):
        fetch.fetch_corpus(load_corpus("multi30k", ROOT / "conf"), tmp_path / "out", mirror=tmp_path / "nowhere")


def test_offline_without_mirror_names_both_ways(tmp_path, monkeypatch) -> None:
    import urllib.error

    def offline(url, dest, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch, "_download", offline)
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch_corpus(load_corpus("multi30k", ROOT / "conf"), tmp_path / "out")
    assert "connect to the internet" in str(err.value) and "SEQFORGE_DATA_MIRROR" in str(err.value)


def test_an_added_corpus_missing_from_data_says_dvc_pull(tmp_path) -> None:
    corpus = CorpusCfg(
        name="mine", format="tsv", languages=["ko", "en"], columns={"ko": 0, "en": 1}, files={"pairs.tsv": "0" * 64}
    )
    with pytest.raises(fetch.FetchError, match=r"pairs\.tsv is missing.*conf/corpora/mine\.yaml.*dvc pull"):
        fetch.fetch_corpus(corpus, tmp_path / "mine", mirror=None)


def test_token_budget_batches_cover_everything_once_per_epoch() -> None:
    lengths = np.array([(n % 17 + 1, n % 13 + 2) for n in range(500)])
    shards = [TokenBudgetBatchSampler(lengths, 200, shuffle=True, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in range(2):
        for s in shards:
            s.set_epoch(epoch)
        batches = [list(s) for s in shards]
        assert len(batches[0]) == len(batches[1]) == len(shards[0])  # DDP needs equal counts
        seen = [i for shard in batches for b in shard for i in b]
        assert set(seen) == set(range(500)) and len(seen) - 500 <= max(len(b) for b in batches[0])
        for b in batches[0] + batches[1]:
            assert len(b) * (max(lengths[i][0] for i in b) + max(lengths[i][1] for i in b)) <= 200
    val = [list(TokenBudgetBatchSampler(lengths, 200, False, 0, r, 2, even=False)) for r in range(2)]
    assert sorted(i for shard in val for b in shard for i in b) == list(range(500))


def test_a_tiny_validation_set_still_gives_every_rank_a_batch() -> None:
    lengths = np.array([(5, 5)] * 5)  # 5 short pairs: one batch would hold them all
    shards = [list(TokenBudgetBatchSampler(lengths, 2000, False, 0, r, 2, even=False)) for r in range(2)]
    assert all(shards) and sorted(i for shard in shards for b in shard for i in b) == list(range(5))


@pytest.mark.parametrize("header", [False, True])
def test_tsv_arrow_and_line_readers_give_the_same_rows(tmp_path, header: bool) -> None:
    """TSV is parsed by Arrow, and read again line by line where Arrow refuses it: same rows either way
    (byte-order mark dropped, blank lines skipped, quotes kept, CRLF ends)."""
    import pyarrow as pa

    from seqforge.corpora.delimited import Tsv, arrow_tsv
    from seqforge.data.rows import row_schema

    rows = 'Ein "Hund"\tA "dog"\r\n\nZwei\tTwo\n  \t x\n'
    (tmp_path / "p.tsv").write_text("\ufeff" + ("de\ten\n" if header else "") + rows, encoding="utf-8")
    corpus = CorpusCfg(
        name="t",
        format="tsv",
        languages=["en", "de"],
        header=header,
        columns={"de": "de", "en": "en"} if header else {"de": 0, "en": 1},
        files={"p.tsv": ""},
    )
    by_arrow = pa.Table.from_batches(list(arrow_tsv(corpus, tmp_path)), row_schema(corpus)).to_pylist()
    assert (
        by_arrow
        == list(Tsv().read(corpus, tmp_path))
        == [
            {"split": "all", "en": 'A "dog"', "de": 'Ein "Hund"'},
            {"split": "all", "en": "Two", "de": "Zwei"},
            {"split": "all", "en": " x", "de": "  "},
        ]
    )


def test_gpu_batches_come_in_few_shapes_and_keep_the_budget() -> None:
    """`pad_to_multiple: 8` (GPUs): an epoch's batches take a handful of (rows, source width, target width)
    shapes, each width a multiple of 8, where unrounded batches take nearly one shape per batch."""
    from seqforge.data.batching import collate

    rng = np.random.default_rng(0)
    src = 4 + rng.poisson(11, 3000)  # correlated lengths, as a translation corpus's (Multi30k: mean 15, r 0.87)
    lengths = np.stack([src, np.maximum(1, src + rng.integers(-3, 4, 3000))], axis=1)
    examples = [{"src_ids": [5] * s, "tgt_ids": [6] * t, "index": i} for i, (s, t) in enumerate(lengths.tolist())]

    def shapes(multiple: int) -> tuple[set, int]:
        sampler = TokenBudgetBatchSampler(lengths, 2000, shuffle=True, seed=1, multiple=multiple)
        seen, batches = set(), list(sampler)
        for batch in batches:
            b = collate([examples[i] for i in batch], multiple)
            assert b["tgt_in"].shape == b["tgt_out"].shape and b["src"].size(0) == len(batch)
            if multiple > 1:  # the rounded widths are what the budget counts (unrounded: the lengths, EOS aside)
                assert b["src"].numel() + b["tgt_in"].numel() <= 2000
            seen.add((len(batch), b["src"].size(1), b["tgt_in"].size(1)))
        assert sorted(i for b in batches for i in b) == list(range(3000))
        return seen, len(batches)

    rounded, batches = shapes(8)
    assert all(src % 8 == 0 and tgt % 8 == 0 for _, src, tgt in rounded)
    buckets = {((s + 1 + 7) // 8, (t + 1 + 7) // 8) for s, t in lengths.tolist()}
    assert len(rounded) <= 2 * len(buckets) < batches  # per bucket: full batches of one size, and its last
    plain, _ = shapes(1)
    assert len(plain) > 2 * len(rounded)
