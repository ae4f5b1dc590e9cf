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
            "mode": ["hrtem", "haadf"],
            "tp": [90, 10],
            "fp": [5, 0],
            "fn": [5, 90],
            "fn_invisible": [0, 60],
            "fn_missed": [2, 30],
            "fn_outline": [3, 0],
            "fp_outline": [4, 0],
            "fp_detection": [1, 0],
            "visible_share": [1.0, 0.5],
        }
    )
    report = detectability.summarize(particles, images)
    budget = report["error_budget"]["all"]
    assert budget["fn_invisible"]["share_of_errors"] == pytest.approx(0.6)
    assert budget["fn_invisible"]["iou_without"] == pytest.approx(160 / 200)
    assert budget["fp_outline"]["iou_without"] == pytest.approx(100 / 196, abs=1e-4)
    assert report["error_budget"]["hrtem"]["fn_outline"]["iou_without"] == pytest.approx(93 / 100)
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


def test_iou_ceiling_counts_only_the_visible_particles(detectability: ModuleType) -> None:
    scene = _scene()
    table = detectability.image_particles(scene, scene.found)
    strong_px, faint_px = (int(c.mask.sum()) for c in scene.particles)
    assert detectability.visible_pixels(scene, table, 5.0) == strong_px
    assert detectability.visible_pixels(scene, table, 0.0) == strong_px + faint_px
    assert detectability.visible_pixels(scene, table, 1e9) == 0
    images = pd.DataFrame(
        {
            "mode": ["hrtem", "haadf"],
            "truth_px": [200, 100],
            **{f"visible_px_k{k:g}": [100, 100] for k in detectability.CEILING_LIMITS},
        }
    )
    ceilings = detectability.iou_ceilings(images)
    assert ceilings["k >= 5"] == {"all": pytest.approx(2 / 3, abs=1e-4), "haadf": 1.0, "hrtem": 0.5}


def test_error_budget_charges_each_wrong_pixel_once(detectability: ModuleType) -> None:
    scene = _scene()
    found = scene.found.copy()
    rows, cols = np.nonzero(scene.particles[0].mask)
    found[48, 40 - 8] = False  # one outline pixel of the found disk missed
    found[48, 40 + 9] = True  # one pixel just outside it: an outline error
    found[5, 5] = True  # far from any particle: a false detection
    table = detectability.image_particles(scene, found)
    budget = detectability.error_budget(scene, table, found)
    faint_px = int(scene.particles[1].mask.sum())
    assert budget == {
        "fn_invisible": faint_px,  # the faint disk is below the Rose limit
        "fn_missed": 0,
        "fn_outline": 1,
        "fp_outline": 1,
        "fp_detection": 1,
    }
    assert sum(budget.values()) == int((found != scene.mask).sum())
