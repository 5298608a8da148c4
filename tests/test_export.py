"""`seqforge export --format ct2`: the smoke Transformer converted to CTranslate2 decodes as our PyTorch search
does, registers as a new version that `translate` loads in a fresh process, keeps the pyfunc's request limits,
and a model or option it cannot export gets one line."""

import json
import sys

import pandas as pd
import pytest
from datasets import load_from_disk

from helpers import copy_repo, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(smoke_repo, tmp_path_factory):
    """A copy of the smoke repo whose Transformer version is exported (float32) and registered as @ct2-float32;
    the export command's output."""
    repo, env = smoke_repo
    repo = copy_repo(repo, tmp_path_factory.mktemp("export") / "seqforge", "runs")
    source = json.loads((repo / "reports" / "transformer" / "registered.json").read_text())
    out = run(
        ["seqforge", "export", f"{source['name']}/{source['version']}", "--format", "ct2", "--quantization", "float32"],
        repo,
        env,
    )
    return repo, env, source, out.stdout


def test_ct2_float32_decodes_the_test_split_as_pytorch_does(smoke_repo, tmp_path) -> None:
    """Greedy: the same tokens for all but 1 % of the test sentences (the two backends' float32 products round
    differently, which flips a near tie now and then: 1 of 300 in a smoke model trained on a busy machine); beam 5
    (CTranslate2's search is ours; its finished hypotheses re-ranked with our length penalty): the same but where
    more than beam_size hypotheses finished, which CTranslate2 cuts to beam_size by its own normalisation first;
    int8 weights still translate."""
    from seqforge.config.shared import DecodeCfg
    from seqforge.export.ct2 import convert
    from seqforge.inference.ct2_predictor import CT2Predictor
    from seqforge.inference.predictor import Predictor

    repo, _ = smoke_repo
    torch_side = Predictor.load(repo / "models" / "transformer", DecodeCfg(device="cpu"))
    src = load_from_disk(str(repo / "artifacts" / "tokenized" / "translation"))["test"]["src_ids"]
    agreement, differ = {}, {}
    for quantization in ("float32", "int8"):
        convert(torch_side.model, "transformer", torch_side.tokenizer, tmp_path / quantization, quantization)
        (tmp_path / quantization / "tokenizer.json").write_text(
            (repo / "models" / "transformer" / "tokenizer.json").read_text()
        )
        ct2_side = CT2Predictor.from_dir(tmp_path / quantization, torch_side.meta, DecodeCfg(device="cpu"))
        for beam in (1, 5):
            cfg = DecodeCfg(device="cpu", beam_size=beam)
            ours, theirs = torch_side.generate_ids(src, cfg), ct2_side.generate_ids(src, cfg)
            differ[quantization, beam] = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
            agreement[quantization, beam] = 1 - len(differ[quantization, beam]) / len(src)
    assert agreement["float32", 1] >= 0.99, agreement
    # the same search; where more than beam_size hypotheses finished, CTranslate2 keeps beam_size of them by its own
    # normalisation before we rank them (CT2Predictor): only those sentences may differ, and few do
    assert agreement["float32", 5] >= 0.95, agreement
    assert unexplained(torch_side, src, differ["float32", 5], beam=5) == []
    assert agreement["int8", 1] >= 0.5, agreement  # quantized: close, not equal


def unexplained(predictor, src: list[list[int]], sentences: list[int], beam: int) -> list[int]:
    """The sentences among `sentences` whose PyTorch beam search finished at most `beam` hypotheses: there the two
    backends' searches must agree."""
    import torch

    from seqforge.config.shared import DecodeCfg
    from seqforge.data.batching import collate
    from seqforge.inference.decoding import beam_search, max_lengths

    cfg, left = DecodeCfg(), []
    for i in sentences:
        batch = collate([{"src_ids": src[i], "index": 0}])
        caps = max_lengths(batch["src_lens"], cfg.max_len_ratio, cfg.max_len_offset)
        with torch.inference_mode():
            finished = beam_search(predictor.model, batch["src"], batch["src_lens"], caps, beam, n_best=2 * beam)[0]
        if len(finished) <= beam:
            left.append(i)
    return left


def test_exported_version_is_registered_with_its_lineage_and_translates_in_a_fresh_process(exported) -> None:
    repo, env, source, printed = exported
    assert f"from version {source['version']}) as @ct2-float32: test bleu" in printed
    listing = run(["seqforge", "models", "translation-en-de"], repo, {**env, "COLUMNS": "250"}).stdout
    assert "ctranslate2 float32" in listing and "pytorch" in listing
    check = (
        "import mlflow; v = mlflow.MlflowClient().get_model_version_by_alias('translation-en-de', 'ct2-float32');"
        "print(v.tags['backend'], v.tags['source_version'], v.tags['quantization'], v.tags['test_bleu'],"
        " v.tags['data_version'] == mlflow.MlflowClient().get_model_version('translation-en-de', "
        f"'{source['version']}').tags['data_version'])"
    )
    backend, version, quantization, bleu, same_data = run(
        [sys.executable, "-c", check], repo, {**env, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    ).stdout.split()
    assert (backend, version, quantization, same_data) == ("ctranslate2", source["version"], "float32", "True")
    assert float(bleu) >= 0
    sentences = ["A man is riding a bike.", "Two women are sitting on a bench in the park."]
    lines = run(
        ["seqforge", "translate", "-m", "translation-en-de@ct2-float32", *sentences], repo, env
    ).stdout.splitlines()
    assert len(lines) == 2 and all(line.strip() for line in lines) and lines[0] != lines[1]


def test_exported_pyfunc_keeps_the_request_limits(exported, monkeypatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    repo, _, _, _ = exported
    monkeypatch.chdir(repo)
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    pyfunc = mlflow.pyfunc.load_model("models:/translation-en-de@ct2-float32")
    assert type(pyfunc.unwrap_python_model().predictor).__name__ == "CT2Predictor"
    for rows, message in (
        ([{"source": "A dog."}] * 65, "65 rows in one request, more than the limit of 64"),
        ([{"source": "A dog."}, {"source": "가나다라 " * 100}], "row 1: "),
        ([{"source": "x" * 1001}], "more than the limit of 1000"),
    ):
        with pytest.raises(MlflowException) as err:
            pyfunc.predict(pd.DataFrame(rows))
        assert err.value.error_code == "INVALID_PARAMETER_VALUE" and message in err.value.message


def test_what_cannot_be_exported_gets_one_line(exported) -> None:
    repo, env, _, _ = exported
    gru = json.loads((repo / "reports" / "gru_bahdanau" / "registered.json").read_text())
    cases = {
        f"translation-en-de/{gru['version']}": "CTranslate2 converts Transformers only",
        "translation-en-de@ct2-float32": "is a ctranslate2 export already",
        "no-such-model@champion": "not in the registry",
    }
    for model, message in cases.items():
        done = run(["seqforge", "export", model], repo, env, check=False)
        assert done.returncode == 1 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            done.stderr
        )
    done = run(
        ["seqforge", "export", "translation-en-de@ct2-float32", "--quantization", "int4"], repo, env, check=False
    )
    assert done.returncode == 1 and "--quantization 'int4': ct2 takes float32, int8" in done.stderr
