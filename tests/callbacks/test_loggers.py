"""The loggers: one tiny training run with ``logger=many`` writes its scalars, hyperparameters and (where the
logger takes them) pictures to TensorBoard, CSV, MLflow and W&B, W&B offline without touching the network."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seg.callbacks.loggers import build_loggers, logger_configs
from seg.run.build import build_trainer
from seg.train import train

from helpers import compose_config, read_csv, tiny_overrides

PICTURES = {"val/predictions", "test/confusion_matrix", "test/per_class_iou"}
SCALARS = {"train/loss_step", "val/acc", "test/acc", "test/acc_per_image_mean", "hp/best_val_acc"}


def test_a_logger_group_is_one_logger_several_or_none(tmp_path):
    assert logger_configs(None) == {}
    one = compose_config("train", f"paths.output_dir={tmp_path}").logger
    assert logger_configs(one) == {"logger": one}
    many = compose_config("train", "logger=many", f"paths.output_dir={tmp_path}", "logger.mlflow=null").logger
    assert list(logger_configs(many)) == ["tensorboard", "csv", "wandb"]  # TensorBoard first: the main logger


def test_build_gives_purge_step_to_tensorboard_and_keeps_wandb_offline(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_ERROR_REPORTING"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose_config("train", "logger=many", "logger.mlflow=null", f"paths.output_dir={tmp_path}")
    tensorboard, csv, wandb = build_loggers(cfg.logger, purge_step=7)
    assert tensorboard._kwargs == {"purge_step": 7} and Path(csv.log_dir) == tmp_path / "csv"
    assert wandb.save_dir == str(tmp_path) and wandb._experiment is None  # nothing started before training
    assert os.environ["WANDB_MODE"] == "offline" and os.environ["WANDB_ERROR_REPORTING"] == "false"
    trainer = build_trainer(compose_config("train", "logger=csv", f"paths.output_dir={tmp_path}"))
    assert [type(lg).__name__ for lg in trainer.loggers] == ["CSVLogger"]


class Listener:
    """A TCP port on loopback that counts the connections made to it: where W&B's server address and
    every HTTP(S) proxy point during the run, so that any request W&B makes lands here."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def many_run(archive_url, data_dir, tmp_path_factory) -> tuple[Path, Path, dict, int]:
    """(run dir, log dir, metrics, connections W&B made) of one tiny run with every logger."""
    tmp = tmp_path_factory.mktemp("loggers")
    run_dir, log_dir = tmp / "run", tmp / "outputs"
    cfg = compose_config(
        "train",
        *tiny_overrides(archive_url, data_dir, log_dir),
        "logger=many",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1",
        "callbacks.pictures.log_images_every_n_epochs=1",
        f"paths.output_dir={run_dir}",
    )
    listener = Listener()
    address = f"http://127.0.0.1:{listener.port}"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_MODE", "WANDB_ERROR_REPORTING", "WANDB_API_KEY", "NO_PROXY", "no_proxy"):
            mp.delenv(var, raising=False)
        for var in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            mp.setenv(var, address)
        metrics = train(cfg)
    listener.close()
    return run_dir, log_dir, metrics, listener.connections


def test_tensorboard_gets_scalars_hyperparameters_and_pictures(many_run):
    run_dir = many_run[0]
    tags: dict[str, set] = {"scalars": set(), "images": set()}
    for f in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        ea = EventAccumulator(str(f), size_guidance={"images": 0})
        ea.Reload()
        for kind in tags:
            tags[kind] |= set(ea.Tags()[kind])
    assert tags["scalars"] >= SCALARS and tags["images"] >= PICTURES
    assert "lr: 0.001" in (run_dir / "tensorboard" / "hparams.yaml").read_text()


def test_csv_gets_scalars_and_hyperparameters(many_run):
    run_dir, _, metrics, _ = many_run
    rows = read_csv(run_dir / "csv" / "metrics.csv")
    assert set(rows[0]) >= SCALARS
    logged = [float(r["test/acc_per_image_mean"]) for r in rows if r["test/acc_per_image_mean"]]
    assert logged == [pytest.approx(metrics["test/acc_per_image_mean"])]
    assert "lr: 0.001" in (run_dir / "csv" / "hparams.yaml").read_text()
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["hparams.yaml", "metrics.csv"]  # no pictures


def test_mlflow_keeps_the_run_in_the_store_under_outputs_with_its_pictures(many_run):
    from mlflow.tracking import MlflowClient

    run_dir, log_dir, metrics, _ = many_run
    client = MlflowClient(f"sqlite:///{log_dir}/mlflow/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("seg").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["output_dir"] == str(run_dir)
    assert set(run.data.metrics) >= SCALARS and run.data.params["optimizer/lr"] == "0.001"
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    assert len(client.get_metric_history(run.info.run_id, "train/loss_step")) == 1  # one training step
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(log_dir / "mlflow" / "artifacts")
    assert {str(p.parent.relative_to(artifacts)) for p in artifacts.rglob("step_*.png")} == PICTURES


def wandb_records(run_file: Path) -> tuple[dict[str, list], dict[str, object]]:
    """(history: key -> logged values, config: key -> value) of an offline W&B run file: records of
    W&B's protobuf ``Record`` in a LevelDB-style log (a 7-byte file header, then 32 KiB blocks of
    chunks, each with a 7-byte header: checksum, length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32768
    assert data[:4] == b":W&B"
    history: dict[str, list] = {}
    config: dict[str, object] = {}
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            for item in record.history.item:
                history.setdefault(item.key or "/".join(item.nested_key), []).append(json.loads(item.value_json))
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
    return history, config


def test_wandb_runs_offline_in_the_run_dir_without_touching_the_network(many_run):
    run_dir, _, metrics, connections = many_run
    assert connections == 0  # nothing reached W&B's server address or a proxy
    (offline,) = (run_dir / "wandb").glob("offline-run-*")  # offline: a run to `wandb sync` later
    history, config = wandb_records(next(offline.glob("run-*.wandb")))
    assert set(history) >= SCALARS and history["test/acc"] == [pytest.approx(metrics["test/acc"])]
    assert config["optimizer"]["lr"] == 0.001
    images = offline / "files" / "media" / "images"  # <tag>_<step>_<hash>.png
    assert {p.relative_to(images).as_posix().rsplit("_", 2)[0] for p in images.rglob("*.png")} == PICTURES


def test_a_run_continued_in_its_folder_keeps_the_csv_rows_before_the_checkpoint(tmp_path):
    cfg = compose_config("train", "logger=csv", f"paths.output_dir={tmp_path}")
    first = build_loggers(cfg.logger)[0]
    for step in range(5):
        first.log_metrics({"train/loss_step": 1.0 / (step + 1)}, step=step)
    first.finalize("success")
    resumed = build_loggers(cfg.logger, purge_step=3)[0]  # the checkpoint was at step 3
    resumed.log_metrics({"train/loss_step": 0.1, "val/acc": 0.5}, step=3)
    resumed.finalize("success")
    rows = read_csv(tmp_path / "csv" / "metrics.csv")
    assert [(r["step"], r["train/loss_step"], r["val/acc"]) for r in rows] == [
        ("0", "1.0", ""),
        ("1", "0.5", ""),
        ("2", "0.3333333333333333", ""),
        ("3", "0.1", "0.5"),
    ]
