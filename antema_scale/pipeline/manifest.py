"""``manifest.json``: what a run read, with which parameters, model, software and hardware.

The manifest lets anyone trace a number in ``particles.parquet`` back to the input files
(with checksums), every parameter, the model weights (sha256), the versions of the
libraries and the machine. It is written atomically at the end of each run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from antema_scale.provenance import git_revision, hardware_fingerprint, software_versions

MANIFEST_NAME = "manifest.json"

#: Libraries the pipeline itself relies on, on top of :data:`antema_scale.provenance.TRACKED_PACKAGES`.
PIPELINE_PACKAGES: tuple[str, ...] = (
    "dask-image",
    "dask-jobqueue",
    "dask-kubernetes",
    "rich",
    "typer",
)


def build_manifest(
    *,
    inputs: Iterable[Mapping[str, Any]],
    parameters: Mapping[str, Any],
    parameters_hash: str,
    model: Mapping[str, Any],
    cluster: Mapping[str, Any],
    counts: Mapping[str, int],
    started: datetime,
    finished: datetime,
) -> dict[str, Any]:
    """Assemble the manifest of a run.

    Parameters
    ----------
    inputs : iterable of mapping
        One entry per image: ``image_id``, ``source``, ``sha256``, ``status``.
    parameters : mapping
        Segmentation and analysis parameters (JSON-safe).
    parameters_hash : str
        Hash of the result-changing parameters.
    model : mapping
        ``segmenter``, ``path``, ``sha256``.
    cluster : mapping
        Scheduler address, workers, threads (see
        :func:`antema_scale.pipeline.cluster.cluster_description`).
    counts : mapping
        ``analysed``, ``reused``, ``failed``, ``particles``.
    started, finished : datetime
        UTC start and end of the run.

    Returns
    -------
    dict
        JSON-safe manifest.
    """
    from antema_scale.provenance import TRACKED_PACKAGES

    return {
        "format": "antema-scale-run-manifest-v1",
        "started_utc": started.isoformat(),
        "finished_utc": finished.isoformat(),
        "wall_seconds": round((finished - started).total_seconds(), 3),
        "inputs": [dict(entry) for entry in inputs],
        "parameters": dict(parameters),
        "parameters_hash": parameters_hash,
        "model": dict(model),
        "counts": dict(counts),
        "cluster": dict(cluster),
        "software": software_versions((*TRACKED_PACKAGES, *PIPELINE_PACKAGES)),
        "git_revision": git_revision(),
        "hardware": hardware_fingerprint(),
    }


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


def write_manifest(manifest: Mapping[str, Any], output_dir: Path) -> Path:
    """Write ``manifest`` as ``<output_dir>/manifest.json`` atomically; returns the path."""
    path = Path(output_dir) / MANIFEST_NAME
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(temporary, path)
    return path


def read_manifest(output_dir: Path) -> dict[str, Any]:
    """Read ``<output_dir>/manifest.json``."""
    return json.loads((Path(output_dir) / MANIFEST_NAME).read_text())
