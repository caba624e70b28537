"""trainer.precision=auto: bf16 where the CPU has native bfloat16, fp32 elsewhere, with both flag sets faked."""

from __future__ import annotations

import logging

import pytest

import seg.run.hardware
from seg.run.build import build_trainer
from seg.run.hardware import auto_precision, cpu_flags, cpu_kind

from helpers import compose_config

AVX512_BF16 = {"avx2", "avx512f", "avx512_bf16"}
AMX = {"avx2", "amx_bf16", "amx_tile"}
AVX2_ONLY = {"sse4_2", "avx", "avx2", "fma"}


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv(seg.run.hardware.FLAGS_ENV, raising=False)  # the suite fakes the flags (conftest)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    assert cpu_kind(AVX512_BF16) == "AVX512-BF16" and cpu_kind(AMX) == "AVX512-BF16" and cpu_kind(AVX2_ONLY) == "AVX2"


@pytest.mark.parametrize("flags, expected", [(AVX512_BF16, "bf16-mixed"), (AMX, "bf16-mixed"), (AVX2_ONLY, "32-true")])
def test_auto_precision_on_the_cpu(flags, expected):
    precision, why = auto_precision("cpu", flags)
    assert precision == expected
    assert why.startswith("the CPU has native bfloat16") == (expected == "bf16-mixed")


@pytest.mark.parametrize("flags, expected", [(AVX512_BF16, "bf16-mixed"), (AVX2_ONLY, "32-true")])
def test_the_trainer_gets_the_auto_choice_and_logs_it(flags, expected, monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(seg.run.hardware, "cpu_flags", lambda *a: flags)
    cfg = compose_config("train", "model.net.weights=null", "trainer.accelerator=cpu", f"paths.output_dir={tmp_path}")
    assert cfg.trainer.precision == "auto"  # the default
    with caplog.at_level(logging.INFO, logger="seg.run.build"):
        trainer = build_trainer(cfg)
    assert trainer.precision == expected
    assert f"trainer.precision=auto: {expected}" in caplog.text
    # an explicit precision is left alone
    assert (
        build_trainer(
            compose_config("train", "trainer.accelerator=cpu", "trainer.precision=32", f"paths.output_dir={tmp_path}")
        ).precision
        == "32-true"
    )


def test_seg_cpu_flags_replaces_the_cpus_own(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu avx2\n")
    monkeypatch.setenv(seg.run.hardware.FLAGS_ENV, "avx2, avx512_bf16")
    assert cpu_flags(info) == {"avx2", "avx512_bf16"}
    assert auto_precision("cpu")[0] == "bf16-mixed"
    monkeypatch.setenv(seg.run.hardware.FLAGS_ENV, "avx2 fma")
    assert auto_precision("cpu")[0] == "32-true"


@pytest.mark.cpu_kinds
def test_the_suite_runs_as_each_cpu_kind(cpu_kind):
    assert auto_precision("cpu")[0] == {"avx2": "32-true", "avx512_bf16": "bf16-mixed"}[cpu_kind]
