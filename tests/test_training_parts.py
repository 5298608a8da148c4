"""Training parts below the pipeline: checkpoint averaging, weight-decay groups, inference device."""

import numpy as np
import pytest
import torch

from seqforge.config.base import ConfigError
from seqforge.config.shared import DecodeCfg
from seqforge.experiments.config import experiment_schema, load_experiment
from seqforge.training.averaging import average
from seqforge.training.worker.module import Seq2SeqModule


def test_average_is_the_elementwise_mean_of_float_tensors() -> None:
    states = [{"w": torch.full((2, 2), float(i)), "steps": torch.tensor(i)} for i in (1, 2, 6)]
    mean = average(states)
    torch.testing.assert_close(mean["w"], torch.full((2, 2), 3.0))
    assert mean["steps"] == 1  # not averaged: taken from the first (best) state


@pytest.mark.parametrize("name", ["gru_bahdanau", "transformer"])
def test_weight_decay_skips_norms_biases_and_embeddings(name: str, conf_copy) -> None:
    """Only weight matrices decay; embeddings (and the output projection tied to them) do not."""
    from seqforge.config.shared import TokenizerCfg
    from seqforge.data.tokenizer import SubwordTokenizer

    tok = SubwordTokenizer.train(["a b c d"] * 50, ["e f g h"] * 50, TokenizerCfg(vocab_size=100, min_frequency=1))
    exp = load_experiment(name, conf_copy)
    module = Seq2SeqModule(exp.model_dump(mode="json"), 40, 40, tok.dumps(), "translation")
    decay, no_decay = module.parameter_groups()
    assert decay["weight_decay"] == exp.optim.weight_decay > 0 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decayed and all(".weight" in n and "embed" not in n and "norm" not in n for n in decayed)
    assert not any("bias" in n or "embed" in n or "norm" in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.parameters()))
    model = module.model
    assert id(model.output.weight) not in {id(p) for p in decay["params"]}  # tied to the embedding


@pytest.mark.parametrize(("optimizer", "kind"), [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)])
def test_optim_optimizer_builds_its_optimizer_over_the_decay_groups(optimizer: str, kind: type, conf_copy) -> None:
    from seqforge.config.shared import TokenizerCfg
    from seqforge.data.tokenizer import SubwordTokenizer
    from seqforge.experiments.config import with_overrides

    tok = SubwordTokenizer.train(["a b c d"] * 50, ["e f g h"] * 50, TokenizerCfg(vocab_size=100, min_frequency=1))
    exp = with_overrides(
        load_experiment("gru_bahdanau", conf_copy),
        {"optim.optimizer": optimizer, "optim.lr": 0.5, "optim.momentum": 0.9, "optim.schedule": "inverse_sqrt"},
        "test",
    )
    module = Seq2SeqModule(exp.model_dump(mode="json"), 40, 40, tok.dumps(), "translation")
    opt = module.configure_optimizers()["optimizer"]
    assert type(opt) is kind and opt.defaults["lr"] == 0.5 and len(opt.param_groups) == 2
    assert opt.param_groups[0]["weight_decay"] == exp.optim.weight_decay
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == 0.9


def test_inference_on_a_gpu_that_is_not_there_is_a_config_error(tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from seqforge.inference.predictor import Predictor
    from seqforge.models.registry import build_model

    model = build_model(
        experiment_schema()
        .model_validate({"name": "x", "task": "translation", "model": {"arch": "rnn", "hidden_dim": 8, "emb_dim": 8}})
        .model,
        20,
        20,
    )
    with pytest.raises(ConfigError, match="decode.device: cuda, but this machine has no usable GPU"):
        Predictor(model, None, {}, DecodeCfg(device="cuda"))
    assert Predictor(model, None, {}, DecodeCfg(device="auto")).device.type == "cpu"


def test_linear_schedule_warms_up_then_reaches_zero_at_the_budget() -> None:
    from seqforge.training.worker.schedule import step_schedule

    factor = step_schedule("linear", warmup_steps=10, total_steps=110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == 0.0 and factor(200) == 0.0
    values = [factor(s) for s in range(9, 111)]
    assert values == sorted(values, reverse=True)
    inverse_sqrt = step_schedule("inverse_sqrt", warmup_steps=100, total_steps=0)
    assert inverse_sqrt(99) == pytest.approx(1.0) and inverse_sqrt(399) == pytest.approx(0.5)


@pytest.mark.slow
def test_train_compile_gives_the_eager_loss_and_gradients(conf_copy) -> None:
    """`train.compile` compiles the training forward in place (checkpoint keys unchanged); the loss and
    gradients on a padded batch are the eager model's."""
    from seqforge.config.shared import TokenizerCfg, TrainCfg
    from seqforge.data.batching import collate
    from seqforge.data.tokenizer import SubwordTokenizer

    tok = SubwordTokenizer.train(["a b c d"] * 50, ["e f g h"] * 50, TokenizerCfg(vocab_size=100, min_frequency=1))
    exp = load_experiment("gru_bahdanau", conf_copy).model_dump(mode="json")
    exp["model"] |= {"emb_dim": 16, "hidden_dim": 16, "dropout": 0.0}  # compiled dropout draws other masks
    batch = collate(
        [
            {"src_ids": [5, 6, 7, 8, 9][:n], "tgt_ids": [9, 8, 7, 6][: n - 1], "index": i}
            for i, n in enumerate((5, 3, 4))
        ]
    )
    losses, grads = [], []
    for compiled in (False, True):
        torch.manual_seed(0)
        config = {
            "experiment": exp,
            "src_vocab": 40,
            "tgt_vocab": 40,
            "tokenizer": tok.dumps(),
            "kind": "translation",
            "bleu_tokenize": None,
            "train": TrainCfg(compile=compiled).model_dump(),
        }
        module = Seq2SeqModule.from_loop_config(config).train()
        assert (module.model._compiled_call_impl is not None) == compiled
        loss = module._loss(batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in module.model.parameters()]))
    assert module.state_dict().keys() == Seq2SeqModule.from_loop_config(config).state_dict().keys()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


def test_dropout_zeroes_a_share_p_scales_the_rest_and_passes_gradients_through_the_mask() -> None:
    from seqforge.models.dropout import Dropout

    torch.manual_seed(0)
    layer = Dropout(0.25)
    x = torch.full((200, 500), 2.0, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / 0.75))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert layer.eval()(x) is x and "p=0.25" in repr(layer)


def test_in_training_bleu_decodes_its_fixed_sample_only(conf_copy) -> None:
    """`train.eval_bleu_sentences`: the same seeded rows at every evaluation; a validation batch decodes (and
    scores) only its rows among them, its loss still covers every row."""
    from seqforge.config.shared import TokenizerCfg
    from seqforge.data.batching import bleu_sample, collate
    from seqforge.data.tokenizer import SubwordTokenizer

    assert bleu_sample(100, None) is None and bleu_sample(100, 100) is None
    mask = bleu_sample(100, 10)
    assert mask.sum() == 10 and (mask == bleu_sample(100, 10)).all()

    tok = SubwordTokenizer.train(["a b c d"] * 50, ["e f g h"] * 50, TokenizerCfg(vocab_size=100, min_frequency=1))
    module = Seq2SeqModule(
        load_experiment("gru_bahdanau", conf_copy).model_dump(mode="json"), 40, 40, tok.dumps(), "translation", "13a"
    ).eval()
    rows = [{"src_ids": [5, 6, 7], "tgt_ids": [8, 9], "index": i} for i in range(6)]
    asked = []

    class Split:
        def targets(self, indices: list[int]) -> list[str]:
            asked.append(indices)
            return ["e f"] * len(indices)

    sample = np.zeros(6, dtype=bool)
    sample[[1, 4]] = True
    with torch.no_grad():
        every = module.validation_batch(collate(rows), Split())
        sampled = module.validation_batch(collate(rows), Split(), sample)
        none = module.validation_batch(collate(rows[2:4]), Split(), sample)
    assert asked == [list(range(6)), [1, 4]]  # the batch without sampled rows decodes nothing
    assert sampled[:2] == every[:2] and none[2:] == [0.0] * 10  # loss and tokens: every row
    assert every[3] == 6 * 2 and sampled[3] == 2 * 2  # ref_len: the references' words of the decoded rows


def test_what_a_driver_reads_of_a_checkpoint_is_named_as_ray_and_lightning_write_it() -> None:
    """The driver reads checkpoints without importing Lightning: its file and state-key names are its own copies."""
    from ray.train.lightning import RayTrainReportCallback

    from seqforge.training.worker.diagnostics_record import STATE_KEY
    from seqforge.training.worker.gradients import TrainingDiagnostics
    from seqforge.training.worker.storage import CHECKPOINT_NAME

    assert CHECKPOINT_NAME == RayTrainReportCallback.CHECKPOINT_NAME
    assert TrainingDiagnostics().state_key == STATE_KEY == TrainingDiagnostics.__qualname__


def test_resume_passes_over_torn_checkpoints_for_the_newest_complete_one(tmp_path) -> None:
    """A checkpoint is complete when its manifest, written last, matches its files: the newest such one before
    Ray's latest is resumed from; a file cut short, lost, or a manifest never written makes one torn."""
    from ray.train import Checkpoint

    from seqforge.training.worker.checkpoints import resume_point
    from seqforge.training.worker.storage import CHECKPOINT_NAME, seal, torn

    run = tmp_path / "gru_bahdanau-0123"
    folders = [run / f"checkpoint_2026-12-07_10-00-0{i}.000000" for i in range(4)]
    for i, folder in enumerate(folders):
        folder.mkdir(parents=True)
        (folder / CHECKPOINT_NAME).write_bytes(bytes(range(256)) * (i + 1))
        seal(folder)
    latest = Checkpoint.from_directory(folders[3])
    assert resume_point(latest) == (latest, None)

    (folders[3] / CHECKPOINT_NAME).write_bytes(bytes(range(256)) * 2)  # cut to half
    (folders[2] / "manifest.json").unlink()  # its write never finished
    assert torn(folders[2]) == "no complete manifest.json (its write did not finish)"
    chosen, said = resume_point(latest)
    assert chosen.path == str(folders[1])
    assert (
        said
        == f"checkpoint {latest.path} is incomplete (checkpoint.ckpt: 512 of 1,024 bytes): resuming from {chosen.path}"
    )

    (folders[1] / CHECKPOINT_NAME).unlink()
    (folders[0] / CHECKPOINT_NAME).write_bytes(b"x" * 256)  # same size, other bytes
    assert torn(folders[1]) == "checkpoint.ckpt missing" and torn(folders[0]) == "checkpoint.ckpt: SHA-256 differs"
    assert resume_point(latest)[0] is None  # none complete: from the start
