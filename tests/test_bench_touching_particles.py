"""Tests of ``benchmarks/touching_particles.py``: held-out scenes, pooling, paired differences."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from conftest import load_benchmark

from antema_scale.benchmark.accuracy import contact_pairs
from antema_scale.segment.train import RAFT_SEED_BASE, RAFT_TRAIN_SEED_BASE, SYNTH_SEED_BASE


@pytest.fixture(scope="module")
def touching() -> ModuleType:
    return load_benchmark("touching_particles")


def test_scenes_are_held_out_and_touching(touching: ModuleType) -> None:
    used = [*SYNTH_SEED_BASE.values(), RAFT_SEED_BASE, RAFT_TRAIN_SEED_BASE]
    assert touching.TOUCHING_SEED_BASE > max(used)
    for family in touching.FAMILIES:
        (scene,) = touching.touching_scenes(family, 1, size=256)
        assert scene.image.shape == (256, 256) and scene.image.dtype == np.float32
        assert scene.image_id == scene.group == f"{family}-{touching.TOUCHING_SEED_BASE}"
        assert len(scene.instances) > 3
        assert contact_pairs(scene.instances), f"{family}: no touching particles"
    # The same seed gives the same scene; the two families draw different ones.
    first = touching.touching_scenes("haadf-rafts", 1, size=256)[0]
    again = touching.touching_scenes("haadf-rafts", 1, size=256)[0]
    bright = touching.touching_scenes("bf-agglomerates", 1, size=256)[0]
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.array_equal(first.mask, bright.mask)
    with pytest.raises(ValueError, match="unknown family 'rafts'"):
        touching.touching_scenes("rafts", 1)


def _row(
    n_truth: int, n_pred: int, n_matched: int, truth_ecd: float, pred_ecd: float, iou: float
) -> dict[str, float]:
    return {
        "n_truth": n_truth,
        "n_predicted": n_pred,
        "n_matched": n_matched,
        "n_pairs": 4,
        "n_pairs_split": 2,
        "diameter_truth_mean_nm": truth_ecd,
        "diameter_predicted_mean_nm": pred_ecd,
        "pixel_iou": iou,
        "f1": 2 * n_matched / (n_truth + n_pred),
    }


def test_pooled_counts_particles_not_scenes(touching: ModuleType) -> None:
    rows = [_row(10, 10, 8, 10.0, 11.0, 0.9), _row(30, 20, 20, 10.0, 10.0, 0.8)]
    out = touching.pooled(rows)
    assert out["scenes"] == 2
    assert out["pixel_iou_mean"] == pytest.approx(0.85)
    assert out["precision"] == pytest.approx(28 / 30)
    assert out["recall"] == pytest.approx(28 / 40)
    assert out["f1"] == pytest.approx(56 / 70)
    assert out["split_fraction"] == pytest.approx(0.5)
    # Mean ECD over all particles: truth 10 nm; measured (10 x 11 + 20 x 10) / 30.
    assert out["ecd_mean_relative_error"] == pytest.approx((310 / 30 - 10) / 10)


def test_paired_differences_against_the_first_model(touching: ModuleType) -> None:
    first = [_row(10, 10, 8, 10, 10, 0.90), _row(10, 10, 6, 10, 10, 0.80)]
    other = [_row(10, 10, 9, 10, 10, 0.88), _row(10, 10, 6, 10, 10, 0.84)]
    out = touching.paired(other, first)
    assert out["f1_diff_mean"] == pytest.approx(0.05)
    assert out["f1_better"] == 1 and out["f1_worse"] == 0
    assert out["pixel_iou_diff_mean"] == pytest.approx(0.01)
    assert out["pixel_iou_diff_se"] == pytest.approx(np.std([-0.02, 0.04], ddof=1) / np.sqrt(2))
    assert out["pixel_iou_better"] == 1 and out["pixel_iou_worse"] == 1
