"""Read a results directory written by the pipeline, tolerating missing optional parts.

Only ``particles.parquet`` is required. ``images.parquet``, ``errors.parquet`` (or
``errors.csv``), ``excluded.parquet``, ``manifest.json`` and the Zarr store ``store.zarr``
are optional: what is missing becomes a note in the report instead of an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from antema_scale.report.micrograph_figures import ImageRecord

PARTICLES_FILE = "particles.parquet"
IMAGES_FILE = "images.parquet"
ERRORS_FILES = ("errors.parquet", "errors.csv")
EXCLUDED_FILE = "excluded.parquet"
MANIFEST_FILE = "manifest.json"
STORE_DIR = "store.zarr"

ImageLoader = Callable[[str], ImageRecord | None]


class ResultsDirectoryError(ValueError):
    """A results directory cannot be reported on (names the directory and what is wrong)."""


@dataclass
class RunResults:
    """The tables and files of one pipeline run.

    Attributes
    ----------
    results_dir : pathlib.Path
        The run folder.
    particles : pandas.DataFrame
        Merged particle table (lengths in nm, areas in nm²).
    images, errors, excluded : pandas.DataFrame or None
        Per-image table, errors table and excluded regions, when present.
    manifest : dict or None
        Parsed ``manifest.json``.
    load_image : callable or None
        image_id -> :class:`~antema_scale.report.figures.ImageRecord` from the store.
    notes : list of str
        What was missing or unreadable, for the report.
    """

    results_dir: Path
    particles: pd.DataFrame
    images: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    excluded: pd.DataFrame | None = None
    manifest: dict[str, Any] | None = None
    load_image: ImageLoader | None = None
    notes: list[str] = field(default_factory=list)


def load_results(results_dir: str | Path, *, image_loader: ImageLoader | None = None) -> RunResults:
    """Read the tables, manifest and (if possible) the image store of a run.

    Parameters
    ----------
    results_dir : str or pathlib.Path
        Folder written by ``antema_scale.pipeline.analyze``.
    image_loader : callable, optional
        image_id -> ImageRecord, used instead of the Zarr store (e.g. in tests or for
        images kept elsewhere).

    Returns
    -------
    RunResults
        What could be read; ``notes`` lists what was missing.

    Raises
    ------
    ResultsDirectoryError
        If the folder does not exist, or has no readable ``particles.parquet``.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsDirectoryError(f"results directory {results_dir} does not exist")
    particles_path = results_dir / PARTICLES_FILE
    if not particles_path.is_file():
        raise ResultsDirectoryError(
            f"results directory {results_dir} has no {PARTICLES_FILE}; run 'antema-scale analyze' first"
        )
    try:
        particles = pd.read_parquet(particles_path)
    except Exception as error:  # noqa: BLE001 - pyarrow raises several unrelated types
        raise ResultsDirectoryError(
            f"{particles_path} is not a readable Parquet file: {error}"
        ) from error

    run = RunResults(results_dir=results_dir, particles=particles)
    run.images = _read_optional_table(results_dir / IMAGES_FILE, run.notes)
    run.excluded = _read_optional_table(results_dir / EXCLUDED_FILE, run.notes, quiet=True)
    run.errors = _read_errors(results_dir, run.notes)
    run.manifest = _read_manifest(results_dir / MANIFEST_FILE, run.notes)
    if image_loader is not None:
        run.load_image = image_loader
    else:
        run.load_image = store_image_loader(find_store(results_dir, run.manifest), run.notes)
    return run


def store_image_loader(store_path: Path, notes: list[str]) -> ImageLoader | None:
    """An image loader backed by the run's Zarr store, or None (with a note) without one.

    Parameters
    ----------
    store_path : pathlib.Path
        The ``store.zarr`` folder.
    notes : list of str
        Receives a sentence when the store is absent or cannot be opened.

    Returns
    -------
    callable or None
        image_id -> ImageRecord (None for an image the store cannot give back).
    """
    if not store_path.exists():
        notes.append(
            f"No image store ({store_path.name}) in the results: per-image figures and the particle gallery are skipped."
        )
        return None
    try:
        from antema_scale.io import open_store

        store = open_store(store_path)
    except Exception as error:  # noqa: BLE001 - any failure here only skips figures
        notes.append(
            f"The image store {store_path.name} could not be opened ({error}): per-image figures are skipped."
        )
        return None

    def load(image_id: str) -> ImageRecord | None:
        try:
            return _record_from_store(store, image_id)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the report
            notes.append(f"Image {image_id} could not be read from the store: {error}")
            return None

    return load


def _record_from_store(store: Any, image_id: str) -> ImageRecord:
    """Image (first frame of a movie), pixel size and mask (when written) of one image."""
    from antema_scale.io import MaskNotWrittenError

    image = store.read_image(image_id)
    array = np.asarray(image.values)
    n_frames = array.shape[0] if array.ndim == 3 else 1
    if array.ndim == 3:
        array = array[0]
    pixel_size = (float(image.attrs["pixel_size_nm_y"]), float(image.attrs["pixel_size_nm_x"]))
    try:
        mask = np.asarray(store.read_mask(image_id).values, dtype=bool)
    except MaskNotWrittenError:
        mask = None
    if mask is not None and mask.ndim == 3:
        mask = mask[0]
    return ImageRecord(
        image_id=image_id, image=array, pixel_size_nm=pixel_size, mask=mask, n_frames=n_frames
    )


def analysis_options_from_manifest(manifest: dict[str, Any] | None) -> Any:
    """The run's :class:`~antema_scale.particles.AnalysisOptions`, from
    ``manifest["parameters"]["analysis"]`` (defaults without a manifest).

    Raises
    ------
    TypeError
        If the manifest names options that ``AnalysisOptions`` does not have.
    """
    from antema_scale.particles import AnalysisOptions

    parameters = (manifest or {}).get("parameters")
    recorded = parameters.get("analysis") if isinstance(parameters, dict) else None
    if not isinstance(recorded, dict):
        return AnalysisOptions()
    return AnalysisOptions(**recorded)


def recompute_particle_crops(
    record: ImageRecord, particles: pd.DataFrame, options: Any
) -> tuple[dict[int, tuple[np.ndarray, tuple[int, int]]], int]:
    """Per-particle crops of one image, recomputed from its stored mask.

    The pipeline keeps only the particle table, but the analysis is deterministic: the
    same mask and options give the same particles. A recomputed crop is used only for a
    particle of the table with the same id, an area within 0.1 % and a centroid within
    half a pixel, so a different software version or option can never draw a wrong outline.

    Parameters
    ----------
    record : ImageRecord
        Image with its mask and pixel size (nm).
    particles : pandas.DataFrame
        The image's particles from the results (one frame).
    options : AnalysisOptions
        The run's analysis options.

    Returns
    -------
    tuple
        ``(crops, n_unmatched)``: particle_id -> ``(crop mask, (row, col))`` for every
        matching particle, and how many particles of the table had no match.

    Raises
    ------
    ValueError
        If the image has no mask, or no particle of the table is matched.
    """
    from antema_scale.particles import analyze_mask

    if record.mask is None:
        raise ValueError(f"image {record.image_id} has no stored mask")
    table = analyze_mask(
        record.mask, record.pixel_size_nm, options=options, image_id=record.image_id
    )
    recomputed = table.particles.set_index("particle_id")
    crops_by_id = {int(crop.particle_id): crop for crop in table.masks}
    tolerance_nm = 0.5 * min(record.pixel_size_nm)
    crops: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
    for row in particles.itertuples(index=False):
        particle_id = int(row.particle_id)
        if particle_id not in recomputed.index or particle_id not in crops_by_id:
            continue
        other = recomputed.loc[particle_id]
        same_area = np.isclose(other["area_nm2"], row.area_nm2, rtol=1e-3)
        same_place = (
            abs(other["centroid_y_nm"] - row.centroid_y_nm) <= tolerance_nm
            and abs(other["centroid_x_nm"] - row.centroid_x_nm) <= tolerance_nm
        )
        if same_area and same_place:
            crop = crops_by_id[particle_id]
            crops[particle_id] = (crop.mask, (int(crop.offset[0]), int(crop.offset[1])))
    if not crops and len(particles):
        raise ValueError(
            f"re-analysing the stored mask of {record.image_id} matches none of its "
            f"{len(particles)} particles in the results (different options, mask or version)"
        )
    return crops, len(particles) - len(crops)


def find_store(results_dir: Path, manifest: dict[str, Any] | None) -> Path:
    """The run's image store: ``<results_dir>/store.zarr``, else a store path named in the
    manifest (``store``/``store_path``, top level or under ``parameters``) that exists."""
    default = results_dir / STORE_DIR
    if default.exists() or manifest is None:
        return default
    for section in (manifest, manifest.get("parameters")):
        if not isinstance(section, dict):
            continue
        for key in ("store", "store_path"):
            value = section.get(key)
            if isinstance(value, str) and Path(value).exists():
                return Path(value)
    return default


def _read_optional_table(
    path: Path, notes: list[str], *, quiet: bool = False
) -> pd.DataFrame | None:
    if not path.is_file():
        if not quiet:
            notes.append(f"{path.name} is missing from the results.")
        return None
    try:
        return pd.read_parquet(path)
    except Exception as error:  # noqa: BLE001
        notes.append(f"{path.name} could not be read: {error}")
        return None


def _read_errors(results_dir: Path, notes: list[str]) -> pd.DataFrame | None:
    for name in ERRORS_FILES:
        path = results_dir / name
        if not path.is_file():
            continue
        try:
            return pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
        except Exception as error:  # noqa: BLE001
            notes.append(f"{name} could not be read: {error}")
            return None
    notes.append("No errors table in the results.")
    return None


def _read_manifest(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(f"{path.name} is missing: inputs, parameters and versions are not shown.")
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        notes.append(f"{path.name} could not be read: {error}")
        return None
    if not isinstance(manifest, dict):
        notes.append(f"{path.name} is not a JSON object and is not shown.")
        return None
    return manifest
