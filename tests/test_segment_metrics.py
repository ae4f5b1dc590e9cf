"""Pixel and instance metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from antema_scale.segment.metrics import confusion_matrix, instance_matches, pixel_metrics


def test_confusion_matrix_by_hand() -> None:
    truth = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    pred = np.array([[1, 0, 1, 0], [1, 0, 0, 0]], dtype=bool)
    # truth 1 & pred 1: (0,0),(1,0) = 2; truth 1 & pred 0: (0,1) = 1;
    # truth 0 & pred 1: (0,2) = 1; truth 0 & pred 0: 4.
    np.testing.assert_array_equal(confusion_matrix(truth, pred), [[4, 1], [1, 2]])


def test_pixel_metrics_by_hand() -> None:
    m = pixel_metrics(np.array([[4, 1], [1, 2]]))
    assert m["global_accuracy"] == pytest.approx(6 / 8)
    assert m["accuracy_background"] == pytest.approx(4 / 5)
    assert m["accuracy_particle"] == pytest.approx(2 / 3)
    assert m["iou_particle"] == pytest.approx(2 / 4)
    assert m["iou_background"] == pytest.approx(4 / 6)
    assert m["dice_particle"] == pytest.approx(4 / 6)
    assert m["dice_background"] == pytest.approx(8 / 10)
    assert m["mean_iou"] == pytest.approx((0.5 + 4 / 6) / 2)


def test_absent_class_gives_nan_not_error() -> None:
    m = pixel_metrics(np.array([[10, 0], [0, 0]]))
    assert m["global_accuracy"] == 1.0
    assert math.isnan(m["iou_particle"])


def test_shape_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros((2, 2), bool), np.zeros((2, 3), bool))


def test_instance_matching_counts() -> None:
    truth = np.zeros((20, 40), dtype=bool)
    truth[2:8, 2:8] = True  # matched (IoU 25/36)
    truth[2:8, 20:26] = True  # missed
    pred = np.zeros_like(truth)
    pred[3:8, 3:8] = True
    pred[15:18, 30:33] = True  # false positive
    n_t, n_p, matches = instance_matches(truth, pred)
    assert (n_t, n_p) == (2, 2)
    assert len(matches) == 1
    assert matches[0][2] == pytest.approx(25 / 36)
    with pytest.raises(ValueError, match=">= 0.5"):
        instance_matches(truth, pred, iou_threshold=0.3)
