"""A small, realistic results directory built from synthetic discs, for the report tests.

The folder looks like what ``antema_scale.pipeline.analyze`` writes (particles.parquet,
images.parquet, errors.parquet, manifest.json) and comes with an in-memory image loader
(image, mask and per-particle crops), so the report can be tested without the pipeline or
the Zarr store. Other ``test_report_*`` modules import :func:`build_results_dir`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage.draw import disk
from skimage.measure import regionprops

from antema_scale.report.micrograph_figures import ImageRecord

PIXEL_SIZE_NM = 0.5
IMAGE_SHAPE = (240, 320)


@dataclass
class SyntheticRun:
    """A results folder plus the images behind it."""

    results_dir: Path
    particles: pd.DataFrame
    records: dict[str, ImageRecord]

    def load_image(self, image_id: str) -> ImageRecord | None:
        return self.records.get(image_id)


def min_feret_px(mask: np.ndarray) -> float:
    """Smallest caliper width of a region in pixels (projections over 180 directions)."""
    rows, cols = np.nonzero(mask)
    angles = np.deg2rad(np.arange(180))
    projections = np.outer(np.cos(angles), cols) + np.outer(np.sin(angles), rows)
    return float((projections.max(axis=1) - projections.min(axis=1)).min() + 1.0)


def measure_particle(
    crop: np.ndarray, offset: tuple[int, int], image_id: str, particle_id: int
) -> dict:
    """Particle-table row (contract columns) of one boolean crop, lengths in nm."""
    props = regionprops(crop.astype(np.uint8))[0]
    hull = regionprops(props.image_convex.astype(np.uint8))[0]
    scale = PIXEL_SIZE_NM
    min_feret = min_feret_px(crop) * scale
    max_feret = props.feret_diameter_max * scale
    row0, col0 = offset
    min_row, min_col, max_row, max_col = props.bbox
    return {
        "image_id": image_id,
        "particle_id": particle_id,
        "area_nm2": props.area * scale**2,
        "equivalent_diameter_nm": props.equivalent_diameter_area * scale,
        "min_feret_nm": min_feret,
        "max_feret_nm": max_feret,
        "aspect_ratio": max_feret / min_feret,
        "perimeter_nm": props.perimeter * scale,
        "circularity": 4 * np.pi * props.area / props.perimeter**2,
        "convexity": min(hull.perimeter / props.perimeter, 1.0),
        "solidity": props.solidity,
        "centroid_y_nm": (props.centroid[0] + row0) * scale,
        "centroid_x_nm": (props.centroid[1] + col0) * scale,
        "bbox_min_row": min_row + row0,
        "bbox_min_col": min_col + col0,
        "bbox_max_row": max_row + row0,
        "bbox_max_col": max_col + col0,
        "separated": False,
        "separation_method": "",
        "parent_region": particle_id,
        "erosion_steps": 0,
        "touches_border": False,
    }


def _disc_crop(centre: tuple[int, int], radius: int) -> tuple[np.ndarray, tuple[int, int]]:
    size = 2 * radius + 3
    crop = np.zeros((size, size), dtype=bool)
    crop[disk((radius + 1, radius + 1), radius + 0.5, shape=crop.shape)] = True
    return crop, (centre[0] - radius - 1, centre[1] - radius - 1)


def synthetic_image(seed: int, image_id: str) -> tuple[ImageRecord, pd.DataFrame]:
    """One bright-field-like image: isolated discs, one overlapping separated pair, and one
    irregular blob that is not measured."""
    rng = np.random.default_rng(seed)
    crops: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
    rows = []
    particle_id = 1
    for centre_row in (35, 95, 155):
        for centre_col in (35, 95, 155, 215):
            radius = int(rng.integers(7, 15))
            crop, offset = _disc_crop((centre_row + int(rng.integers(-4, 5)), centre_col), radius)
            crops[particle_id] = (crop, offset)
            rows.append(measure_particle(crop, offset, image_id, particle_id))
            particle_id += 1
    parent = 100
    for centre in ((200, 60), (200, 80)):  # two radius-12 discs overlapping by 4 px
        crop, offset = _disc_crop(centre, 12)
        crops[particle_id] = (crop, offset)
        row = measure_particle(crop, offset, image_id, particle_id)
        row.update(separated=True, separation_method="uecs", parent_region=parent, erosion_steps=6)
        rows.append(row)
        particle_id += 1
    mask = np.zeros(IMAGE_SHAPE, dtype=bool)
    for crop, (row0, col0) in crops.values():
        mask[row0 : row0 + crop.shape[0], col0 : col0 + crop.shape[1]] |= crop
    for centre in ((195, 260), (205, 275), (195, 290), (210, 300)):  # a chain: excluded
        mask[disk(centre, 9, shape=IMAGE_SHAPE)] = True
    image = np.where(mask, 70.0, 190.0)
    image = ndimage.gaussian_filter(image, 1.2) + rng.normal(0, 12, IMAGE_SHAPE)
    record = ImageRecord(
        image_id=image_id,
        image=image.astype(np.float32),
        pixel_size_nm=(PIXEL_SIZE_NM, PIXEL_SIZE_NM),
        mask=mask,
        particle_masks=crops,
    )
    return record, pd.DataFrame(rows)


def build_results_dir(root: Path) -> SyntheticRun:
    """Write a results folder with two images in two sample folders and one failed file."""
    results_dir = root / "results"
    results_dir.mkdir(parents=True)
    sources = {"img-a": "/data/gold-A/img-a.dm3", "img-b": "/data/gold-B/img-b.dm3"}
    records: dict[str, ImageRecord] = {}
    tables = []
    for seed, image_id in enumerate(sources):
        record, particles = synthetic_image(seed, image_id)
        records[image_id] = record
        tables.append(particles)
    particles = pd.concat(tables, ignore_index=True)
    particles.to_parquet(results_dir / "particles.parquet", index=False)
    images = pd.DataFrame(
        {
            "image_id": list(sources),
            "source": list(sources.values()),
            "pixel_size_nm_y": PIXEL_SIZE_NM,
            "pixel_size_nm_x": PIXEL_SIZE_NM,
            "n_particles": [int((particles["image_id"] == image_id).sum()) for image_id in sources],
            "quality_mean_margin": [0.81, 0.77],
        }
    )
    images.to_parquet(results_dir / "images.parquet", index=False)
    errors = pd.DataFrame(
        [
            {
                "image_id": "broken",
                "source": "/data/gold-B/broken.dm3",
                "stage": "read",
                "error_type": "CorruptFileError",
                "message": "/data/gold-B/broken.dm3: truncated DM3 tag directory",
            }
        ]
    )
    errors.to_parquet(results_dir / "errors.parquet", index=False)
    manifest = {
        "inputs": list(sources.values()) + ["/data/gold-B/broken.dm3"],
        "parameters": {"separation": "uecs", "convexity_threshold": 0.95, "min_diameter_nm": 0.5},
        "model": {"name": "deeplabv3plus-resnet18", "sha256": "0" * 64},
        "versions": {"antema-scale": "0.1.0", "numpy": np.__version__},
        "hardware": {"cpu_count": 2, "memory_gib": 24.0, "gpus": []},
    }
    (results_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return SyntheticRun(results_dir, particles, records)


@pytest.fixture()
def synthetic_run(tmp_path: Path) -> SyntheticRun:
    return build_results_dir(tmp_path)


def test_synthetic_discs_measure_like_discs(synthetic_run: SyntheticRun) -> None:
    single = synthetic_run.particles[~synthetic_run.particles["separated"]]
    assert len(single) == 24
    # discs: min Feret ≈ max Feret ≈ equivalent diameter (within pixel discretisation)
    np.testing.assert_allclose(single["min_feret_nm"], single["equivalent_diameter_nm"], rtol=0.1)
    assert single["circularity"].between(0.8, 1.1).all()
