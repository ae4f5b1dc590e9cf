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
from antema_scale.io.ingest import IngestReport, collect_inputs, ingest
from antema_scale.io.micrograph import SUPPORTED_SUFFIXES, file_sha256, read_micrograph
from antema_scale.io.store import (
    MaskNotWrittenError,
    Store,
    create_store,
    image_id_for,
    open_store,
    write_image,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "CorruptFileError",
    "EmptyImageError",
    "IngestReport",
    "MaskNotWrittenError",
    "MicrographError",
    "MissingPixelSizeError",
    "NotAnImageError",
    "ReciprocalSpaceError",
    "Store",
    "UnknownFormatError",
    "collect_inputs",
    "create_store",
    "file_sha256",
    "image_id_for",
    "ingest",
    "open_store",
    "read_micrograph",
    "write_image",
]
