"""Tests of ``benchmarks/detectability.py``: Rose numbers and found flags on known scenes."""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import load_benchmark

from antema_scale.synth.truth import ParticleCrop


@pytest.fixture(scope="module")
def detectability() -> ModuleType:
    return load_benchmark("detectability")


def _disk(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_rose_number_of_a_disk_in_white_noise(detectability: ModuleType) -> None:
    rng = np.random.default_rng(0)
    shape = (128, 128)
    disk = _disk(shape, (64, 64), 6)
    contrast, sigma = 3.0, 10.0
    image = rng.normal(100.0, sigma, shape) - contrast * disk
    k, n_px = detectability.particle_visibility(image, disk, disk, radius_px=6)
    assert n_px == disk.sum()
    expected = contrast / sigma * np.sqrt(n_px)  # ~3.2
    assert k == pytest.approx(expected, rel=0.35)
    # Ten times the contrast: ten times the Rose number, up to the same noise.
    k10, _ = detectability.particle_visibility(image - 27.0 * disk, disk, disk, 6)
    assert k10 == pytest.approx(10 * expected, rel=0.1)
    assert k < detectability.ROSE_LIMIT < k10


def test_empty_particle_has_no_rose_number(detectability: ModuleType) -> None:
    image = np.ones((16, 16))
    none = np.zeros((16, 16), dtype=bool)
    k, n_px = detectability.particle_visibility(image, none, none, 3)
    assert n_px == 0 and np.isnan(k)


def _scene() -> SimpleNamespace:
    """Two disks: a strong one (found) and a faint one (missed), one shared pixel row."""
    shape = (96, 160)
    strong = _disk(shape, (48, 40), 8)
    faint = _disk(shape, (48, 120), 8)
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1.0, shape) + 20.0 * strong + 0.05 * faint
    crops = []
    for mask in (strong, faint):
        rows, cols = np.nonzero(mask)
        r0, c0 = rows.min(), cols.min()
        crops.append(ParticleCrop(mask[r0 : rows.max() + 1, c0 : cols.max() + 1], (r0, c0)))
    return SimpleNamespace(image=image, mask=strong | faint, particles=crops, found=strong)


def test_image_particles_flags_found_and_missed(detectability: ModuleType) -> None:
    scene = _scene()
    table = detectability.image_particles(scene, scene.found)
    assert list(table["particle"]) == [1, 2]
    assert list(table["found"]) == [True, False]
    assert table["recall"].tolist() == [1.0, 0.0]
    strong_k, faint_k = table["rose_k"]
    assert strong_k > 100 and faint_k < detectability.ROSE_LIMIT
    assert table["diameter_px"].iloc[0] == pytest.approx(16, abs=1)


def test_summary_bins_and_image_groups(detectability: ModuleType) -> None:
    particles = pd.DataFrame(
        {
            "rose_k": [1.0, 3.0, 7.0, 30.0, 40.0],
            "found": [False, False, True, True, True],
            "diameter_px": [4.0, 4.0, 6.0, 10.0, 12.0],
            "mode": ["hrtem"] * 4 + ["haadf"],
        }
    )
    images = pd.DataFrame(
        {
            "tp": [90, 10],
            "fp": [5, 0],
            "fn": [5, 90],
            "visible_share": [1.0, 0.5],
        }
    )
    report = detectability.summarize(particles, images)
    assert report["share_below_rose_limit"] == pytest.approx(0.4)
    assert report["found_at_or_above_limit"] == 1.0
    assert report["found_below_limit"] == 0.0
    hrtem = {row["rose_k"]: row for row in report["by_rose_bin"]["hrtem"]}
    assert set(hrtem) == {"0-2", "2-5", "5-10", "20-inf"}
    assert hrtem["5-10"]["found"] == 1.0 and hrtem["0-2"]["particles"] == 1
    groups = report["pixel_iou_by_image_visibility"]
    assert groups["all images"]["iou_particle"] == pytest.approx(100 / 200)
    assert groups["images with >= 90 % of particles at k >= 5"]["iou_particle"] == 0.9
    assert groups["images with < 90 % of particles at k >= 5"]["images"] == 1
