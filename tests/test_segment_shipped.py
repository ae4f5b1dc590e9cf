"""The default model shipped in the package: loads safely, carries metadata, segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import standin_micrograph
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
from antema_scale.segment.model_file import (
    SegmentationModel,
    default_model_path,
    weights_sha256,
)


@pytest.fixture(scope="module")
def shipped() -> SegmentationModel:
    if not default_model_path().is_file():
        pytest.skip("no shipped model in antema_scale/models/")
    return load_model(device="cpu")


def test_shipped_file_is_small_weights_only_and_documented(shipped: SegmentationModel) -> None:
    path = default_model_path()
    assert path.stat().st_size < 10 * 1024 * 1024
    payload = torch.load(path, weights_only=True)
    meta = payload["metadata"]
    assert meta["weights_sha256"] == weights_sha256(payload["state_dict"])
    assert meta["weights_dtype"] == "float16"
    for key in ("architecture", "preprocessing", "training", "data_seen", "validation"):
        assert key in meta, key
    assert meta["architecture"]["backbone"] == "resnet18"
    lo, hi = meta["preprocessing"]["pixel_size_range_nm"]
    assert 0 < lo < hi


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_shipped_model_segments_particles_of_both_polarities(
    shipped: SegmentationModel, mode: str
) -> None:
    item = standin_micrograph(11, (256, 256), mode=mode, pixel_size_nm=0.25, noise=0.05)
    (pred,) = predict(shipped, [item.image], [item.pixel_size_nm], batch_size=2)
    iou = pixel_metrics(confusion_matrix(item.mask, pred.mask))["iou_particle"]
    assert iou > 0.6
    assert pred.mask.shape == item.image.shape


def test_pure_noise_is_not_confidently_segmented(shipped: SegmentationModel) -> None:
    noise = np.random.default_rng(0).normal(size=(256, 256))
    (pred,) = predict(shipped, [noise], [0.25], batch_size=2)
    assert pred.quality["out_of_distribution"] or pred.quality["particle_fraction"] < 0.05


@pytest.mark.slow
def test_model_card_test_metrics_reproduce(
    shipped: SegmentationModel, shared_data: Path, tmp_path: Path
) -> None:
    """The test-split metrics recorded in the shipped model (and its card) reproduce (~2 min)."""
    from typer.testing import CliRunner

    from antema_scale.cli import app

    emps = shared_data / "emps-train"
    if not emps.is_dir():
        pytest.skip("../shared/data/emps-train is not present")
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--emps",
            str(emps),
            "--synthetic",
            "400",
            "--split",
            "test",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    measured = json.loads((out / "metrics.json").read_text())["summary"]
    recorded = shipped.metadata["test_metrics"]
    for source in ("synth", "emps"):
        for key in ("iou_particle", "global_accuracy", "dice_particle", "instance_f1"):
            assert measured[source][key] == pytest.approx(recorded[source][key], abs=2e-3), (
                source,
                key,
            )
