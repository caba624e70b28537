"""Sweep bookkeeping: grid multirun summaries (per job, and grouped over seeds and folds), the Optuna sweeper,
the joblib launcher."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

import pytest
import torch

from seg.run.sweep import COLUMNS, GROUP_COLUMNS, JOB_FILE, SweepSummary, fixed_keys, group_rows, summary_rows

from helpers import best_score, read_csv, run_module, scalars

ONE_EPOCH = ["trainer.max_epochs=1"]


def run_seg(*overrides: str, ok: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_module("seg.train", *overrides, env=env, check=ok)


@pytest.fixture
def base(train_overrides) -> list[str]:
    """The tiny CPU run of tests/conftest.py, without its batch size (swept here)."""
    return [o for o in train_overrides if not o.startswith("data.batch_size=")]


# ---------------------------------------------------------------- the summary (fast) -----------------


def test_fixed_keys_are_the_unswept_command_line_overrides():
    task = [
        "data.url=file:///x.zip",
        "data.batch_size=3",
        "optimizer.lr=1e-3,3e-4",
        "data.batch_size=2,4",
        "++trainer.limit_val_batches=1",
        "hparams_search=optuna",
        "model.net.freeze_params=choice(0,50)",
    ]
    assert fixed_keys(task) == ["++trainer.limit_val_batches", "data.url", "hparams_search"]


def test_summary_sorts_best_first_failed_last_and_drops_shared_overrides(tmp_path):
    (tmp_path / ".sweep.json").write_text(json.dumps({"fixed_keys": ["data.url"], "direction": "maximize"}))
    jobs = [
        (0, "completed", 0.5, ["data.url=file\\:///x.zip", "optimizer.lr=0.1"]),
        (1, "failed", None, ["data.url=file\\:///x.zip", "optimizer.lr=-1"]),
        (2, "completed", 0.7, ["data.url=file\\:///x.zip", "optimizer.lr=0.01"]),
    ]
    for num, status, obj, overrides in jobs:
        (tmp_path / str(num)).mkdir()
        metrics = {"best/val/acc": obj, "test/acc": 0.4, "test/miou": 0.2} if obj is not None else None
        rec = {
            "job": num,
            "status": status,
            "overrides": overrides,
            "objective": obj,
            "metrics": metrics,
            "epochs": 3 if obj is not None else None,
            "wall_time_s": 1.5,
            "output_dir": str(tmp_path / str(num)),
            "error": None if obj is not None else "ValueError: Invalid learning rate: -1",
        }
        (tmp_path / str(num) / JOB_FILE).write_text(json.dumps(rec))
    rows, _ = summary_rows(tmp_path)
    assert [r["job"] for r in rows] == [2, 0, 1]
    assert [r["overrides"] for r in rows] == ["optimizer.lr=0.01", "optimizer.lr=0.1", "optimizer.lr=-1"]
    assert rows[0]["best val/acc"] == 0.7 and rows[0]["epochs"] == 3 and rows[2]["status"] == "failed"

    csv_path, md_path = SweepSummary().write(tmp_path)
    got = read_csv(csv_path)
    assert tuple(got[0]) == COLUMNS and [r["job"] for r in got] == ["2", "0", "1"]
    assert got[2]["error"] == "ValueError: Invalid learning rate: -1" and got[2]["best val/acc"] == ""
    md = md_path.read_text()
    assert "3 jobs, 1 failed" in md and md.count("\n| ") == 4  # header + 3 rows
    (tmp_path / ".sweep.json").write_text(json.dumps({"fixed_keys": [], "direction": "minimize"}))
    assert [r["job"] for r in summary_rows(tmp_path)[0]] == [0, 2, 1]  # lowest objective first


def write_jobs(sweep_dir: Path, jobs: list[tuple[list[str], float | None, float]], direction: str = "maximize") -> None:
    """job.json files as SweepSummary writes them: (overrides, objective or None for a failed job, wall time)
    each; the metrics follow from the objective (test/acc = objective - 0.1, ...)."""
    (sweep_dir / ".sweep.json").write_text(json.dumps({"fixed_keys": ["data.url"], "direction": direction}))
    for num, (overrides, obj, wall) in enumerate(jobs):
        (sweep_dir / str(num)).mkdir()
        metrics = None
        if obj is not None:
            metrics = {
                "best/val/acc": obj,
                "test/acc": obj - 0.1,
                "test/acc_per_image_mean": obj - 0.05,
                "test/miou": obj / 2,
            }
        rec = {
            "job": num,
            "status": "completed" if obj is not None else "failed",
            "overrides": ["data.url=file\\:///x.zip", *overrides],
            "objective": obj,
            "metrics": metrics,
            "wall_time_s": wall,
            "output_dir": str(sweep_dir / str(num)),
            "error": None if obj is not None else "RuntimeError: boom",
        }
        (sweep_dir / str(num) / JOB_FILE).write_text(json.dumps(rec))


def test_groups_pool_the_seeds_and_folds_of_each_setting_best_mean_first(tmp_path):
    write_jobs(
        tmp_path,
        [
            (["seed=0", "optimizer.lr=0.1"], 0.5, 60.0),
            (["seed=1", "optimizer.lr=0.1"], 0.7, 120.0),
            (["seed=0", "optimizer.lr=0.01"], 0.8, 90.0),
            (["seed=1", "optimizer.lr=0.01"], None, 5.0),  # failed: counted apart, in no mean
            (["++seed=2", "optimizer.lr=0.01"], 0.9, 90.0),
            (["data.fold=0", "optimizer.lr=0.001"], 0.6, 30.0),
            (["data.fold=1", "optimizer.lr=0.001"], 0.8, 30.0),
            (["seed=0", "optimizer.lr=1.0"], 0.1, 30.0),
        ],
    )
    SweepSummary().write(tmp_path)
    groups = read_csv(tmp_path / "summary_groups.csv")
    assert tuple(groups[0]) == GROUP_COLUMNS
    assert [(g["group"], g["n"], g["failed"]) for g in groups] == [
        ("optimizer.lr=0.01", "2", "1"),
        ("optimizer.lr=0.001", "2", "0"),
        ("optimizer.lr=0.1", "2", "0"),
        ("optimizer.lr=1.0", "1", "0"),
    ]
    best = groups[0]
    assert float(best["objective mean"]) == pytest.approx(0.85)
    assert float(best["objective std"]) == pytest.approx(statistics.stdev([0.8, 0.9]))  # ddof=1
    assert float(best["test/acc mean"]) == pytest.approx(0.75)
    assert float(best["test/acc_per_image_mean mean"]) == pytest.approx(0.8)
    assert float(best["test/miou mean"]) == pytest.approx(0.425) and float(best["minutes mean"]) == 1.5
    assert groups[3]["objective std"] == "" and float(groups[3]["objective mean"]) == pytest.approx(0.1)
    md = (tmp_path / "summary.md").read_text()
    assert "## Groups" in md and "sample standard deviation (ddof=1" in md
    assert "| optimizer.lr=0.1 | 2 | 0 | 0.6000 ± 0.1414 | 0.6000 ± 0.1414 | 0.5000 ± 0.1414 |" in md
    assert "| 1.50 ± 0.71 |" in md  # minutes: 1 and 2
    assert md.count("\n| ") == 2 * 1 + 8 + 4  # two headers, the jobs, the groups
    rows, _ = summary_rows(tmp_path)
    assert next(g["group"] for g in group_rows(rows, minimize=True)) == "optimizer.lr=1.0"  # lowest first


def test_no_groups_table_when_every_setting_ran_once(tmp_path):
    write_jobs(tmp_path, [(["optimizer.lr=0.1"], 0.5, 6.0), (["optimizer.lr=0.2"], 0.6, 6.0)])
    SweepSummary().write(tmp_path)
    assert len(read_csv(tmp_path / "summary_groups.csv")) == 2
    assert "## Groups" not in (tmp_path / "summary.md").read_text()


# ---------------------------------------------------------------- real sweeps (subprocesses) ---------


def test_a_grid_of_seeds_and_learning_rates_runs_every_job_and_groups_them_over_the_seeds(train_overrides, tmp_path):
    sweep = tmp_path / "sweep"
    run_seg(
        "-m",
        *train_overrides,
        *ONE_EPOCH,
        "++trainer.limit_train_batches=1",
        # one step of the trained weights themselves (no EMA) at a high rate: test numbers above 0, so that
        # the means below could be wrong
        "callbacks.ema=null",
        "seed=0,1",
        "optimizer.lr=1e-2,3e-3",
        f"hydra.sweep.dir={sweep}",
    )
    assert (sweep / "multirun.yaml").is_file() and "val/acc" in scalars(sweep / "0")
    jobs = read_csv(sweep / "summary.csv")
    assert len(jobs) == 4 and all(r["status"] == "completed" for r in jobs)
    for r in jobs:  # each job trained with its own seed and learning rate
        own = dict(o.split("=", 1) for o in r["overrides"].split())
        assert (
            f"- optimizer.lr={own['optimizer.lr']}" in (Path(r["output_dir"]) / ".hydra" / "overrides.yaml").read_text()
        )
        hp = torch.load(Path(r["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
        assert hp["optimizer"]["lr"] == pytest.approx(float(own["optimizer.lr"])) and own["seed"] in ("0", "1")
    assert any(float(r["test/acc"]) > 0 for r in jobs)
    groups = read_csv(sweep / "summary_groups.csv")
    assert sorted((g["group"], g["n"]) for g in groups) == [("optimizer.lr=0.003", "2"), ("optimizer.lr=0.01", "2")]
    for g in groups:
        members = [r for r in jobs if r["overrides"].endswith(g["group"])]
        results = [json.loads((Path(r["output_dir"]) / "result.json").read_text())["metrics"] for r in members]
        assert len(results) == 2
        for column, key in [
            ("best val/acc", "best/val/acc"),
            ("test/acc", "test/acc"),
            ("test/acc_per_image_mean", "test/acc_per_image_mean"),
            ("test/miou", "test/miou"),
        ]:
            values = [m[key] for m in results]
            assert float(g[f"{column} mean"]) == pytest.approx(statistics.fmean(values))
            assert float(g[f"{column} std"]) == pytest.approx(statistics.stdev(values), abs=1e-12)
    assert "## Groups" in (sweep / "summary.md").read_text()


# ---------------------------------------------------------------- real sweeps (subprocesses) ---------


@pytest.mark.slow
def test_grid_sweep_summary_records_a_failed_job_and_the_others_still_run(base, tmp_path):
    sweep = tmp_path / "grid"
    # lr=-1 fails the config check: in a multirun the error is raised (not a one-line exit), so Hydra's
    # basic launcher records the job as failed, runs every job of the batch, then re-raises
    proc = run_seg(
        "-m", *base, *ONE_EPOCH, "optimizer.lr=1e-3,-1", "data.batch_size=2,3", f"hydra.sweep.dir={sweep}", ok=False
    )
    assert proc.returncode != 0 and "optimizer.lr=-1: must be a number > 0" in proc.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]

    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 4 and tuple(rows[0]) == COLUMNS
    assert sorted(r["overrides"] for r in rows) == sorted(
        f"optimizer.lr={lr} data.batch_size={bs}" for lr in ("0.001", "-1") for bs in (2, 3)
    )
    done, failed = rows[:2], rows[2:]  # completed first, best first; failed last
    assert [r["status"] for r in done] == ["completed"] * 2 and [r["status"] for r in failed] == ["failed"] * 2
    assert all("optimizer.lr=0.001" in r["overrides"] for r in done)
    assert all(r["error"].startswith("ConfigError: optimizer.lr=-1: must be a number > 0") for r in failed)
    assert all(r[c] == "" for r in failed for c in ("best val/acc", "test/acc", "test/miou", "epochs"))
    assert float(done[0]["objective"]) >= float(done[1]["objective"])
    for r in done:
        for c in ("best val/acc", "test/acc", "test/miou"):
            assert 0.0 <= float(r[c]) <= 1.0
        assert r["epochs"] == "1" and float(r["wall_time_s"]) > 0
        # the objective is what the job returned to Hydra: the best val/acc, as its checkpoint says
        assert float(r["objective"]) == pytest.approx(float(r["best val/acc"]))
        assert float(r["best val/acc"]) == pytest.approx(best_score(Path(r["output_dir"])))
    md = (sweep / "summary.md").read_text()
    assert "4 jobs, 2 failed" in md and md.count("| completed |") == 2 and md.count("| failed |") == 2


@pytest.mark.slow
def test_optuna_sweep_two_trials_with_sqlite_storage(base, tmp_path):
    import optuna  # the sweeps extra (pip install -e ".[dev]" brings it)

    sweep, db = tmp_path / "optuna", tmp_path / "study.db"
    run_seg(
        "hparams_search=optuna",
        *base,
        *ONE_EPOCH,
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep}",
        f"hydra.sweeper.storage=sqlite:///{db}",
        "hydra.sweeper.study_name=test",
    )

    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 2 and all(r["status"] == "completed" for r in rows)
    study = optuna.load_study(study_name="test", storage=f"sqlite:///{db}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    results = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {study.best_value}" in results
    assert float(rows[0]["objective"]) == pytest.approx(study.best_value)  # best first
    classes = {"adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW", "sgd": "torch.optim.SGD"}
    for r in rows:
        trial = study.trials[int(r["job"])]
        assert set(trial.params) == {
            "optimizer",
            "optimizer.lr",
            "optimizer.weight_decay",
            "data.batch_size",
            "model.net.freeze_params",
        }
        assert trial.value == pytest.approx(float(r["objective"]))
        shown = dict(o.split("=", 1) for o in r["overrides"].split())
        assert shown["optimizer"] == trial.params["optimizer"] and set(shown) == set(trial.params)
        # the chosen optimizer group, its lr and weight decay reached the run: the checkpoint holds them
        hp = torch.load(Path(r["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
        assert hp["optimizer"]["_target_"] == classes[trial.params["optimizer"]]
        assert hp["optimizer"]["lr"] == pytest.approx(trial.params["optimizer.lr"])
        assert hp["optimizer"]["weight_decay"] == pytest.approx(trial.params["optimizer.weight_decay"])
        assert hp["net"]["freeze_params"] == trial.params["model.net.freeze_params"]
        assert 1e-4 <= trial.params["optimizer.lr"] <= 3e-2 and trial.params["data.batch_size"] in (4, 8, 16)


@pytest.mark.slow
def test_joblib_launcher_runs_jobs_in_parallel_processes_with_split_threads(base, tmp_path):
    import joblib  # with hydra-joblib-launcher, from the sweeps extra

    sweep = tmp_path / "joblib"
    run_seg(
        "-m",
        *base,
        "trainer.max_epochs=2",
        "data.batch_size=3",
        "optimizer.lr=1e-3,3e-4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    )
    rows = read_csv(sweep / "summary.csv")
    assert len(rows) == 2 and all(r["status"] == "completed" and r["epochs"] == "2" for r in rows)
    assert sorted(r["overrides"] for r in rows) == ["optimizer.lr=0.0003", "optimizer.lr=0.001"]
    jobs = [json.loads((sweep / n / JOB_FILE).read_text()) for n in ("0", "1")]
    parent = json.loads((sweep / ".sweep.json").read_text())["pid"]
    pids = {j["pid"] for j in jobs}
    assert len(pids) == 2 and parent not in pids  # two worker processes, not the launching one
    assert max(j["started_at"] for j in jobs) < min(j["ended_at"] for j in jobs)  # they overlapped
    # loky gives each worker cores // n_jobs torch threads unless OMP_NUM_THREADS is set already
    expected = int(os.environ.get("OMP_NUM_THREADS") or max(joblib.cpu_count() // 2, 1))
    assert [j["torch_threads"] for j in jobs] == [expected, expected]


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_grid_with_the_same_summary(base, tmp_path):
    """hydra/launcher=submitit_local: each job in its own process through submitit, as on SLURM."""
    sweep = tmp_path / "submitit"
    run_seg(
        "-m",
        *base,
        *ONE_EPOCH,
        "data.batch_size=3",
        "optimizer.lr=1e-3,3e-4",
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=20",
        f"hydra.sweep.dir={sweep}",
    )
    rows = read_csv(sweep / "summary.csv")
    assert tuple(rows[0]) == COLUMNS and len(rows) == 2
    assert all(r["status"] == "completed" and r["epochs"] == "1" for r in rows)
    assert sorted(r["overrides"] for r in rows) == ["optimizer.lr=0.0003", "optimizer.lr=0.001"]
    for r in rows:
        assert float(r["objective"]) == pytest.approx(float(r["best val/acc"]))
        assert float(r["best val/acc"]) == pytest.approx(best_score(Path(r["output_dir"])))
    jobs = [json.loads((sweep / n / JOB_FILE).read_text()) for n in ("0", "1")]
    parent = json.loads((sweep / ".sweep.json").read_text())["pid"]
    assert parent not in {j["pid"] for j in jobs}  # submitit ran the jobs in processes of their own
    assert list((sweep / ".submitit").glob("*/*_submitted.pkl"))  # submitit's own job records
