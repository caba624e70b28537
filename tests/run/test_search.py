"""hparams_search=optuna's sampler: a fresh study is the seeded TPE; running the search again on a stored
study proposes new trials instead of repeating the first ones."""

from __future__ import annotations

import optuna
import pytest

from seg.run.search import ContinuingTPESampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def propose(sampler, storage: str | None, n: int = 3) -> list[dict]:
    study = optuna.create_study(storage=storage, study_name="s", sampler=sampler, load_if_exists=True)
    params = []
    for _ in range(n):
        trial = study.ask()
        p = {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True), "bs": trial.suggest_categorical("bs", [4, 8])}
        study.tell(trial, p["lr"])
        params.append(p)
    return params


def test_a_fresh_study_gets_exactly_the_seeded_tpe_trials():
    assert propose(ContinuingTPESampler(seed=1234, n_startup_trials=10), None) == propose(
        optuna.samplers.TPESampler(seed=1234, n_startup_trials=10), None
    )


def test_running_again_on_a_stored_study_proposes_new_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = propose(ContinuingTPESampler(seed=1234, n_startup_trials=10), storage)
    again = propose(ContinuingTPESampler(seed=1234, n_startup_trials=10), storage)
    assert all(a["lr"] != f["lr"] for a in again for f in first)
    # and a plain seeded TPE would have repeated them: what the sampler is for
    repeat = propose(optuna.samplers.TPESampler(seed=1234, n_startup_trials=10), f"sqlite:///{tmp_path / 'b.db'}")
    plain_again = propose(optuna.samplers.TPESampler(seed=1234, n_startup_trials=10), f"sqlite:///{tmp_path / 'b.db'}")
    assert plain_again[0]["lr"] == pytest.approx(repeat[0]["lr"])


def test_the_readme_line_reads_a_stored_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    propose(ContinuingTPESampler(seed=1), storage)
    frame = optuna.load_study(study_name="s", storage=storage).trials_dataframe()  # needs pandas (sweeps extra)
    assert len(frame) == 3 and "params_lr" in frame.columns


def test_the_optuna_search_config_uses_it():
    from helpers import compose_config

    cfg = compose_config("train", "hparams_search=optuna", hydra_config=True)
    assert cfg.hydra.sweeper.sampler._target_ == "seg.run.search.ContinuingTPESampler"
