"""Microscope file readers with physical units, and the Zarr image store.

Public names:

- :func:`read_micrograph` -- any supported file -> ``xarray.DataArray`` with nm coords;
- :class:`MicrographError` and its subclasses -- what goes wrong with a file, typed;
- :func:`ingest`, :func:`open_store`, :class:`Store`, :class:`IngestReport` -- many files
  -> one Zarr v3 store, in parallel with Dask.
"""

from antema_scale.io.errors import (
    CorruptFileError,
    EmptyImageError,
    MicrographError,
    MissingPixelSizeError,
    NotAnImageError,
    ReciprocalSpaceError,
    UnknownFormatError,
)
from antema_scale.io.micrograph import SUPPORTED_SUFFIXES, file_sha256, read_micrograph

__all__ = [
    "SUPPORTED_SUFFIXES",
    "CorruptFileError",
    "EmptyImageError",
    "MicrographError",
    "MissingPixelSizeError",
    "NotAnImageError",
    "ReciprocalSpaceError",
    "UnknownFormatError",
    "file_sha256",
    "read_micrograph",
]
