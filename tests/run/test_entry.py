"""What every entry point shares: GROUP=null as users type it, and the settings check before the job."""

from __future__ import annotations

import pytest

from seg.eval import SETTINGS as EVAL_SETTINGS
from seg.run.entry import null_groups, run_job

from helpers import compose_config


def test_group_null_leaves_the_group_out():
    assert null_groups(["logger=null", "scheduler=null", "seed=null", "test_tta=null", "model=mobilenet"]) == [
        "~logger",
        "~scheduler",
        "seed=null",  # a plain key: null is its value
        "test_tta=null",
        "model=mobilenet",
    ]
    cfg = compose_config("train", *null_groups(["logger=null"]))
    assert "logger" not in cfg and cfg.model  # the rest composes as usual


def test_run_job_checks_the_settings_before_the_job(caplog):
    ran = []
    with pytest.raises(SystemExit) as exit_:
        run_job(compose_config("eval", "ckpt_path=x", "split=training"), ran.append, EVAL_SETTINGS)
    assert exit_.value.code == 2 and not ran and "split='training'" in caplog.text
    assert run_job(compose_config("eval", "ckpt_path=x"), lambda cfg: cfg.split, EVAL_SETTINGS) == "test"
