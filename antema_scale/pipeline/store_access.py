"""The pipeline's view of the image store (:mod:`antema_scale.io`): which images a run
covers, and reading images / writing masks inside tasks.

Inputs are either micrograph files, folders and globs, ingested into
``<output_dir>/store.zarr`` (files already there by sha256 are not re-read), or a store
ingested earlier, used in place. Files that cannot be ingested become error rows.

:func:`plan_store` only hashes the input files: the new ones come back as ``pending``
ingest tasks that the graph runs alongside segmentation and measurement (an image is
segmented as soon as it is in the store, while other files are still being read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

#: Name of the store the pipeline ingests into, inside the run folder.
STORE_NAME = "store.zarr"


@dataclass(frozen=True)
class StoreImage:
    """One image of the run: its id in the store, source file and checksum."""

    image_id: str
    source: str
    sha256: str
    n_frames: int = 1


@dataclass
class StoreEntries:
    """The images a run covers and the inputs that could not be ingested.

    Attributes
    ----------
    store_path : Path
        The store the tasks read from and write masks to.
    images : list of StoreImage
        Images of this run, sorted by id.
    errors : list of dict
        Error rows (``image_id, source, stage, error_type, message``) for inputs that
        were not ingested.
    skipped : list of str
        Files found in input folders that are not micrograph formats (notes, truth
        tables, ...): listed in the manifest, not errors.
    pending : list of antema_scale.io.ingest.IngestTask
        New files still to be read into the store (from :func:`plan_store`).
    """

    store_path: Path
    images: list[StoreImage] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)


def ingest_error_record(row: Any) -> dict[str, str]:
    """Errors-table row of a file that could not be ingested (``source, error, message``)."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {
        "image_id": "",
        "source": str(get("source")),
        "stage": "ingest",
        "error_type": str(get("error")),
        "message": str(get("message")),
    }


def store_image_of(row: dict[str, Any]) -> StoreImage:
    """The :class:`StoreImage` of an index row returned by :func:`antema_scale.io.ingest.ingest_file`."""
    return StoreImage(
        str(row["image_id"]), str(row["source"]), str(row["sha256"]), int(row.get("n_frames") or 1)
    )


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr store directory (has a ``zarr.json``)."""
    candidate = Path(path)
    return candidate.is_dir() and (candidate / "zarr.json").is_file()


def _as_list(inputs: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [inputs] if isinstance(inputs, (str, Path)) else list(inputs)


def _images_from_index(index: Any, image_ids: set[str] | None = None) -> list[StoreImage]:
    rows = index if image_ids is None else index[index["image_id"].isin(image_ids)]
    return sorted(
        (
            StoreImage(
                str(r.image_id), str(r.source), str(r.sha256), int(getattr(r, "n_frames", 1) or 1)
            )
            for r in rows.itertuples()
        ),
        key=lambda image: image.image_id,
    )


def plan_store(
    inputs: str | Path | Sequence[str | Path],
    output_dir: Path,
    *,
    pixel_size_nm: float | tuple[float, float] | None = None,
    client: Any = None,
    progress: bool = False,
) -> StoreEntries:
    """List the run's images: those already in a store, and the files still to ingest.

    New files are only hashed here, not read: images already in the store (same SHA-256)
    are listed in ``images``; every new file is an ingest task in ``pending``, for the
    graph to run; files that cannot be found or hashed are in ``errors``.

    Parameters
    ----------
    inputs : path, glob, or sequence of them
        Files, folders, globs, or one ingested store (used in place).
    output_dir : Path
        Run folder; new stores go to ``<output_dir>/store.zarr``.
    pixel_size_nm : float or (float, float), optional
        Pixel size (nm) for files without one.
    client : distributed.Client, optional
        Hash on this cluster.
    progress : bool
        Show the hashing progress bar.

    Returns
    -------
    StoreEntries
    """
    from antema_scale.io import open_store
    from antema_scale.io.ingest import plan_ingest

    items = _as_list(inputs)
    if len(items) == 1 and is_store(items[0]):
        store = open_store(items[0])
        return StoreEntries(store_path=store.path, images=_images_from_index(store.index))
    plan = plan_ingest(
        items,
        output_dir / STORE_NAME,
        pixel_size_nm=pixel_size_nm,
        client=client,
        progress=progress,
    )
    store = open_store(plan.store)
    stored = {row["image_id"] for row in plan.skipped if row["image_id"]}
    return StoreEntries(
        store_path=store.path,
        images=_images_from_index(store.index, stored),
        errors=[ingest_error_record(row) for row in plan.errors],
        skipped=[str(row["source"]) for row in plan.skipped if not row["image_id"]],
        pending=list(plan.todo),
    )


def open_run_store(path: str | Path) -> Any:
    """Open the run's store inside a task (:func:`antema_scale.io.open_store`)."""
    from antema_scale.io import open_store

    return open_store(path)


def read_image(store: Any, image_id: str, *, lazy: bool = False) -> xr.DataArray:
    """The micrograph ``image_id`` with its pixel sizes in nm (``pixel_size_nm_y/x`` attrs);
    ``lazy`` gives a Dask-backed array (read only the frames that are selected)."""
    return store.read_image(image_id, lazy=lazy)


def write_mask(store: Any, image_id: str, mask: np.ndarray, *, frame: int | None = None) -> None:
    """Write the particle mask of ``image_id`` (2-D), or of one ``frame`` of a movie, into the store."""
    store.write_mask(image_id, np.asarray(mask, dtype=bool), frame=frame)
