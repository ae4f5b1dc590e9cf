"""The default model shipped in the package: loads safely, carries metadata, segments."""

from __future__ import annotations

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
