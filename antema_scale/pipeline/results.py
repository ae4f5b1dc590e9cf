"""Per-image result files (written atomically) and the merged tables of a run.

Every analysed image leaves one file ``per_image/<image file stem>.parquet``: its particle
table, with the image's summary row, its excluded regions and its *result key* (image
sha256 + parameter hash + model sha256, see :func:`antema_scale.pipeline.settings.result_key`)
in the Parquet schema metadata. The file is written to a temporary name in the same folder
and moved into place with :func:`os.replace`, so a reader sees either no file or a whole
one, never a half-written one: a killed worker or an interrupted run loses only the images
in flight, a re-run skips every image whose file carries the same key, and an image
computed twice (a retried task) still appears once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PER_IMAGE_DIR = "per_image"
_KEY_FIELD = b"antema_scale.result_key"
_IMAGE_FIELD = b"antema_scale.image"
_EXCLUDED_FIELD = b"antema_scale.excluded"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

#: Columns of the errors table.
ERROR_COLUMNS: tuple[str, ...] = ("image_id", "source", "stage", "error_type", "message")


def result_file_name(image_id: str) -> str:
    """File name of an image's result: the id made file-system safe, plus a short hash.

    The hash keeps ids that differ only in unsafe characters (``a/b`` vs ``a_b``) apart.
    """
    safe = _UNSAFE.sub("_", image_id).strip("._") or "image"
    if safe != image_id:
        safe = f"{safe[:80]}-{hashlib.sha1(image_id.encode()).hexdigest()[:8]}"
    return f"{safe}.parquet"


def result_path(output_dir: Path, image_id: str) -> Path:
    """Where the result of ``image_id`` lives under ``output_dir``."""
    return Path(output_dir) / PER_IMAGE_DIR / result_file_name(image_id)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_parquet_atomically(
    table: pd.DataFrame, path: Path, metadata: Mapping[bytes, bytes] | None = None
) -> None:
    """Write ``table`` to ``path`` via a temporary file and :func:`os.replace`.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows to write (the index is dropped).
    path : Path
        Final location; its folder is created.
    metadata : mapping of bytes to bytes, optional
        Extra Parquet schema metadata.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **metadata})
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(arrow, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_image_result(
    output_dir: Path,
    image_id: str,
    key: str,
    particles: pd.DataFrame,
    image_row: Mapping[str, Any],
    excluded: pd.DataFrame | None = None,
) -> Path:
    """Store one image's particle table, summary row and excluded regions atomically.

    Parameters
    ----------
    output_dir : Path
        Run folder.
    image_id : str
        Image identifier (store index).
    key : str
        Result key of this image under this run's parameters and model.
    particles : pandas.DataFrame
        Particle table (lengths in nm, areas in nm²).
    image_row : mapping
        Per-image summary (JSON-serialisable after numpy scalars are converted).
    excluded : pandas.DataFrame, optional
        Regions excluded from measurement, with the reason.

    Returns
    -------
    Path
        The written file.
    """
    excluded_records = [] if excluded is None else excluded.to_dict(orient="records")
    metadata = {
        _KEY_FIELD: key.encode(),
        _IMAGE_FIELD: json.dumps(_json_safe(dict(image_row))).encode(),
        _EXCLUDED_FIELD: json.dumps(_json_safe(excluded_records), default=str).encode(),
    }
    path = result_path(output_dir, image_id)
    write_parquet_atomically(particles, path, metadata)
    return path


def stored_result_key(output_dir: Path, image_id: str) -> str | None:
    """The result key stored with ``image_id``'s result, or ``None`` when absent or unreadable."""
    path = result_path(output_dir, image_id)
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    key = metadata.get(_KEY_FIELD)
    return key.decode() if key is not None else None


@dataclass
class ImageResult:
    """One image's stored result, read back."""

    particles: pd.DataFrame
    image_row: dict[str, Any]
    excluded: pd.DataFrame
    key: str


def read_image_result(output_dir: Path, image_id: str) -> ImageResult:
    """Read back what :func:`write_image_result` stored for ``image_id``."""
    path = result_path(output_dir, image_id)
    arrow = pq.read_table(path)
    metadata = arrow.schema.metadata or {}
    return ImageResult(
        particles=arrow.to_pandas(),
        image_row=json.loads(metadata[_IMAGE_FIELD]),
        excluded=pd.DataFrame(json.loads(metadata.get(_EXCLUDED_FIELD, b"[]"))),
        key=metadata[_KEY_FIELD].decode(),
    )


@dataclass
class MergedResults:
    """The tables of a whole run."""

    particles: pd.DataFrame
    images: pd.DataFrame
    excluded: pd.DataFrame
    errors: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ERROR_COLUMNS)))


def _sort_particles(particles: pd.DataFrame) -> pd.DataFrame:
    order = [name for name in ("image_id", "frame", "particle_id") if name in particles.columns]
    if order and len(particles):
        particles = particles.sort_values(order, kind="stable")
    return particles.reset_index(drop=True)


#: Per-image columns that add up over the frame chunks of a movie.
_ADDITIVE_COLUMNS: tuple[str, ...] = (
    "frames",
    "n_particles",
    "n_excluded",
    "segment_seconds",
    "analyze_seconds",
)


def _combine_rows(rows: pd.DataFrame) -> dict[str, Any]:
    combined: dict[str, Any] = rows.iloc[0].to_dict()
    for name in rows.columns:
        values = rows[name]
        if name in _ADDITIVE_COLUMNS:
            combined[name] = values.sum()
        elif name.startswith("quality_") and values.dtype == bool:
            combined[name] = bool(values.any())
        elif name.startswith("quality_") and pd.api.types.is_numeric_dtype(values):
            weights = rows["frames"] if "frames" in rows else None
            combined[name] = float(np.average(values, weights=weights))
    return combined


def combine_chunk_rows(images: pd.DataFrame) -> pd.DataFrame:
    """One row per image: the rows of a movie's frame chunks (``frame_start`` set) are
    combined (counts, frames and times summed, quality signals averaged over frames, any
    ``out_of_distribution`` flag kept)."""
    if "frame_start" not in images.columns or images.empty:
        return images
    chunked = images["frame_start"].notna()
    combined = [_combine_rows(group) for _, group in images[chunked].groupby("image_id", sort=True)]
    whole = images[~chunked].drop(columns=["frame_start", "frame_stop"])
    rest = pd.DataFrame(combined).drop(columns=["frame_start", "frame_stop"])
    return pd.concat([whole, rest], ignore_index=True) if len(whole) else rest


def merge_image_results(output_dir: Path, image_ids: Iterable[str]) -> MergedResults:
    """Concatenate the stored results of ``image_ids`` (each exactly once), sorted.

    Parameters
    ----------
    output_dir : Path
        Run folder.
    image_ids : iterable of str
        Images whose results are merged (duplicates are ignored).

    Returns
    -------
    MergedResults
        Particles sorted by image, frame and particle id; one summary row per image.
    """
    particles: list[pd.DataFrame] = []
    rows: list[dict[str, Any]] = []
    excluded: list[pd.DataFrame] = []
    for image_id in dict.fromkeys(image_ids):
        result = read_image_result(output_dir, image_id)
        if len(result.particles.columns):
            particles.append(result.particles)
        rows.append(result.image_row)
        if len(result.excluded):
            excluded.append(result.excluded)
    non_empty = [table for table in particles if len(table)]
    merged = (
        pd.concat(non_empty or particles[:1], ignore_index=True) if particles else pd.DataFrame()
    )
    images = combine_chunk_rows(pd.DataFrame(rows))
    if len(images):
        images = images.sort_values("image_id", kind="stable").reset_index(drop=True)
    return MergedResults(
        particles=_sort_particles(merged),
        images=images,
        excluded=pd.concat(excluded, ignore_index=True) if excluded else pd.DataFrame(),
    )


def errors_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Errors table (:data:`ERROR_COLUMNS`), sorted by image id, from error records."""
    table = pd.DataFrame(list(records), columns=list(ERROR_COLUMNS))
    return table.sort_values(["image_id", "stage", "source"], kind="stable").reset_index(drop=True)
