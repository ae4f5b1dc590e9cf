"""Classical threshold baseline on synthetic discs of both polarities."""

from __future__ import annotations

import numpy as np
import pytest

from antema_scale.segment.datasets import standin_micrograph
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
from antema_scale.segment.threshold import otsu_separability, threshold_segment


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
@pytest.mark.parametrize("method", ["otsu", "local"])
def test_finds_discs_in_both_polarities(mode: str, method: str) -> None:
    item = standin_micrograph(3, (192, 192), mode=mode, pixel_size_nm=0.5, noise=0.05)
    pred = threshold_segment(item.image, item.pixel_size_nm, method=method)
    iou = pixel_metrics(confusion_matrix(item.mask, pred.mask))["iou_particle"]
    assert iou > (0.8 if method == "otsu" else 0.6)
    assert pred.quality["polarity"] == (1.0 if mode == "haadf" else -1.0)
    assert pred.mask.shape == item.image.shape and pred.probability.dtype == np.float32


def test_forced_polarity_and_flat_image() -> None:
    item = standin_micrograph(4, (128, 128), mode="hrtem", noise=0.02)
    wrong = threshold_segment(item.image, 0.5, polarity="bright")
    assert wrong.mask.mean() > 0.5  # the background is taken for particles
    flat = threshold_segment(np.full((32, 32), 3.0), 0.5)
    assert not flat.mask.any() and flat.quality["out_of_distribution"] is True


def test_separability_of_two_levels() -> None:
    values = np.array([0.0] * 50 + [1.0] * 50)
    assert otsu_separability(values, 0.5) == pytest.approx(1.0)
    assert otsu_separability(np.random.default_rng(0).normal(size=1000), 0.0) < 0.7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"method": "kmeans"}, "method"), ({"polarity": "up"}, "polarity")],
)
def test_bad_options(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        threshold_segment(np.ones((8, 8)), 0.5, **kwargs)  # type: ignore[arg-type]
