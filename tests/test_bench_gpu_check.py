"""Tests of ``benchmarks/gpu_check.py`` on the CPU (CUDA stood in for where it is needed)."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from conftest import load_benchmark

from antema_scale.segment import load_model


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    return load_benchmark("gpu_check")


def test_agreement_scores_the_cpu_against_the_truth(gpu_check: ModuleType) -> None:
    if torch.cuda.is_available():
        pytest.skip("this test runs the CPU-only branch")
    (row,) = gpu_check.agreement(2)
    assert row["device"] == "cpu" and row["precision"] == "fp32"
    assert 0.7 < row["particle_iou"] <= 1.0  # the shipped model on one BF, one HAADF image


def test_cuda_branches_compare_with_the_cpu_and_time_predict(
    gpu_check: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CUDA stood in by the CPU, the comparison finds no difference at all."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(gpu_check, "load_model", lambda path, device: load_model(path, "cpu"))
    rows = gpu_check.agreement(1)
    assert [(r["device"], r["precision"]) for r in rows] == [
        ("cpu", "fp32"),
        ("cuda", "fp32"),
        ("cuda", "auto"),
    ]
    for row in rows[1:]:
        assert row["max_probability_difference_to_cpu"] == 0.0
        assert row["mask_pixels_differing_from_cpu"] == 0.0
    monkeypatch.setattr(gpu_check, "SIZE", 128)
    monkeypatch.setitem(gpu_check.host_work_rows.__globals__, "SIZE", 128)  # bench_inference
    timed = gpu_check.throughput(8)
    assert [r["case"] for r in timed] == [
        "default inference (8 views)",
        "network alone (flips=1)",
        "host work per 1024² image, 1 thread",
        f"host work per 1024² image, {torch.get_num_threads()} threads",
    ][: 3 if torch.get_num_threads() == 1 else 4]
    assert all(r["images"] == 8 and r["images_per_s"] > 0 for r in timed[:2])
    assert all(r["seconds"] > 0 and "images/s" in r["note"] for r in timed[2:])


def test_training_step_trains_resumes_and_predicts(gpu_check: ModuleType) -> None:
    result = gpu_check.training(2, device="cpu")
    assert result["epochs_before_resume"] == 2
    assert len(result["losses"]) == 3  # two epochs, then one more after resuming
    assert all(0 < loss < 10 for loss in result["losses"])
    assert result["steps_per_s"] > 0 and result["checkpoint_predicts"] is True
