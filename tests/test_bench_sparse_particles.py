"""Tests of ``benchmarks/sparse_particles.py``: held-out sparse scenes, whole vs pieces."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from conftest import load_benchmark

from antema_scale.segment import load_model
from antema_scale.segment.train import RAFT_TRAIN_SEED_BASE, SYNTH_SEED_BASE


@pytest.fixture(scope="module")
def sparse() -> ModuleType:
    return load_benchmark("sparse_particles")


def test_scenes_are_sparse_held_out_and_alternate_modes(sparse: ModuleType) -> None:
    touching = load_benchmark("touching_particles")
    assert sparse.SPARSE_SEED_BASE > max(*SYNTH_SEED_BASE.values(), RAFT_TRAIN_SEED_BASE)
    assert sparse.SPARSE_SEED_BASE > touching.TOUCHING_SEED_BASE + 100_000
    scenes = [sparse.sparse_scene(i, 512) for i in range(2)]
    assert [s.config.mode for s in scenes] == ["hrtem", "haadf"]
    for scene in scenes:
        coverage = np.asarray(scene.mask).mean()
        assert 0.003 < coverage < 0.03  # ~1 % of the area
        assert scene.pixel_size_nm == pytest.approx(0.3)


def test_one_piece_scene_scores_the_same_whole_and_in_pieces(sparse: ModuleType) -> None:
    row = sparse.scene_row(load_model(None, device="cpu"), sparse.sparse_scene(1, 512))
    assert row["mode"] == "haadf" and 0 <= row["gradient"] <= 0.3
    whole, pieces = row["whole"], row["pieces"]
    assert whole["false_fraction"] == pieces["false_fraction"]  # a 512² scene is one piece
    assert whole["particle_iou"] == pieces["particle_iou"]
    assert 0 <= whole["false_fraction"] < 1 and 0 < whole["particle_iou"] <= 1
