"""A training run's metrics reach MLflow once Ray has registered the checkpoint holding their work, so a
worker group restarted from a checkpoint logs each metric once (a real SQLite MLflow store)."""

from __future__ import annotations

import queue
import socket
import time

import mlflow

from seqforge.tracking.run_logger import RunLogger


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within 10 s"
        time.sleep(0.05)


def test_metrics_wait_for_their_checkpoint_to_be_registered_and_a_killed_attempts_never_arrive(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("runs")).info.run_id
    registered: queue.Queue[int] = queue.Queue()  # what the controller's RegisteredCheckpoints sends

    first = RunLogger(uri, run_id, notify=print, registered=registered)  # the attempt that will be killed
    first.log_metrics({"train_loss_step": 1.0}, step=4)
    first.seal(10)  # the checkpoint at update 10 is reported ...
    first.log_metrics({"train_loss_step": 1.0}, step=9)  # ... and then Lightning logs its update
    first.log_metrics({"train_loss_step": 1.0}, step=14)
    first.log_metrics({"val_loss": 5.0}, step=22)  # the epoch's validation ...
    first.seal(23)  # ... and its checkpoint reported, but never registered: the worker dies first
    time.sleep(0.5)
    assert history(client, run_id, "train_loss_step") == []  # nothing before Ray registered a checkpoint
    registered.put(10)
    wait_for(lambda: [s for s, _ in history(client, run_id, "train_loss_step")] == [4, 9])
    time.sleep(0.5)
    assert [s for s, _ in history(client, run_id, "train_loss_step")] == [4, 9]  # update 14 waits for 23

    registered = queue.Queue()  # the killed attempt reads no more (its process is gone)
    second = RunLogger(uri, run_id, notify=print, registered=registered)  # restarted from update 10
    second.log_metrics({"train_loss_step": 2.0}, step=14)
    second.log_metrics({"val_loss": 6.0}, step=22)
    second.seal(23)
    registered.put(23)
    second.log_metrics({"train_loss_step": 2.0}, step=29)  # after the last checkpoint: sent when training ends
    second.finalize()

    assert history(client, run_id, "train_loss_step") == [(4, 1.0), (9, 1.0), (14, 2.0), (29, 2.0)]
    assert history(client, run_id, "val_loss") == [(22, 6.0)]  # once, from the attempt the run went on from


def test_a_training_whose_last_checkpoint_is_never_registered_sends_only_what_registered_ones_hold(tmp_path) -> None:
    """The last epoch's report skipped (a peer died after the validation): the worker that reaches the end of
    training sends nothing of that epoch; the restarted worker group will log it."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("runs")).info.run_id
    registered: queue.Queue[int] = queue.Queue()
    logger = RunLogger(uri, run_id, notify=print, registered=registered, register_timeout=0.5)
    logger.log_metrics({"train_loss_step": 1.0}, step=4)
    logger.seal(10)
    registered.put(10)
    logger.log_metrics({"val_loss": 5.0}, step=22)
    logger.seal(23)  # never registered
    logger.finalize("success")
    assert [s for s, _ in history(client, run_id, "train_loss_step")] == [4] and history(
        client, run_id, "val_loss"
    ) == []

    failed = RunLogger(uri, run_id, notify=print, registered=None)  # not watching: finalize is all that decides
    failed.log_metrics({"val_loss": 7.0}, step=22)
    failed.finalize("failed")
    assert history(client, run_id, "val_loss") == []


def test_a_restarted_worker_group_sends_what_its_checkpoint_carries_once(tmp_path) -> None:
    """Ray registered the checkpoint at update 20, but the worker died before it sent what that released: the
    checkpoint carries those metrics, and the worker group restarted from it sends them; sent twice, MLflow
    keeps one copy. A stage rerun after its driver was killed sends them to the killed driver's run, not its own."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("runs")
    run_id, rerun_id = (client.create_run(experiment).info.run_id for _ in range(2))

    first = RunLogger(uri, run_id, notify=print, registered=queue.Queue())  # never hears of a registration
    first.log_metrics({"train_loss_step": 1.0}, step=4)
    first.seal(10)
    first.log_metrics({"val_loss": 5.0}, step=19)
    carried = first.unsent()  # what the checkpoint at update 20 saves, before it is reported and sealed
    first.seal(20)
    first.log_metrics({"train_loss_step": 1.0}, step=24)  # after it: the restart redoes this

    restarted = RunLogger(uri, run_id, notify=print, registered=None)  # restarted from update 20
    restarted.resend(carried)
    restarted.outbox.flush(10.0)
    restarted.resend(carried)  # and again: the same metrics, the same timestamps
    restarted.log_metrics({"train_loss_step": 2.0}, step=24)
    restarted.finalize()
    assert history(client, run_id, "train_loss_step") == [(4, 1.0), (24, 2.0)]
    assert history(client, run_id, "val_loss") == [(19, 5.0)]

    killed_id = client.create_run(experiment).info.run_id  # a driver killed before its worker sent anything
    killed = RunLogger(uri, killed_id, notify=print, registered=queue.Queue())
    killed.log_metrics({"val_loss": 6.0}, step=19)
    rerun = RunLogger(uri, rerun_id, notify=print, registered=None)  # a stage rerun tracks a new run
    rerun.resend(killed.unsent())
    rerun.finalize()
    assert history(client, rerun_id, "val_loss") == [] and history(client, killed_id, "val_loss") == [(19, 6.0)]


def test_a_curve_waits_for_the_checkpoint_of_its_update_not_of_its_steps(tmp_path) -> None:
    """The encoder-gradient curve of epoch 1, measured at update 23, has the distances 0..29 as its steps: the
    curve waits for update 23's checkpoint (found by the fault campaign: its first 20 steps used to go out at
    once as the work of update 20's checkpoint, and again from the restarted attempt)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("runs")).info.run_id
    registered: queue.Queue[int] = queue.Queue()
    first = RunLogger(uri, run_id, notify=print, registered=registered)
    first.seal(20)
    registered.put(20)
    first.log_curve("enc_grad_norm_epoch1", [0.5] * 30, update=23)
    first.seal(23)  # reported, never registered: the worker dies
    time.sleep(0.5)
    assert history(client, run_id, "enc_grad_norm_epoch1") == []

    registered = queue.Queue()
    second = RunLogger(uri, run_id, notify=print, registered=registered)  # restarted from update 20
    second.log_curve("enc_grad_norm_epoch1", [0.5] * 30, update=23)
    second.seal(23)
    registered.put(23)
    second.finalize()
    assert [s for s, _ in history(client, run_id, "enc_grad_norm_epoch1")] == list(range(30))


def test_a_worker_asks_the_server_nothing_at_the_start_and_its_tag_waits_in_the_outbox() -> None:
    """With the tracking server down: Lightning's setup touches `experiment` without a request (so without MLflow's
    retries), the node tag waits in the outbox, and a checkpoint's `unsent` carries metrics only."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there
    logger = RunLogger(down, "0" * 32, notify=print)
    started = time.monotonic()
    assert logger.experiment is not None and time.monotonic() - started < 1
    logger.tag("ray.worker0.node", "node-a")
    assert [item.key for batch in logger.outbox.queued() for item in batch] == ["ray.worker0.node"]
    assert logger.unsent() == {"run_id": "0" * 32, "batches": []}


def test_a_tag_reaches_the_run_through_the_outbox(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("runs")).info.run_id
    RunLogger(uri, run_id, notify=print).tag("ray.worker1.node", "node-b")
    wait_for(lambda: client.get_run(run_id).data.tags.get("ray.worker1.node") == "node-b")
