"""One entry point for every microscope file: :func:`read_micrograph`.

The format is chosen by suffix (``.dm3``, ``.ser``, ``.tif``, ...) and, for unknown
suffixes, by the file's magic bytes. The format reader (see :mod:`antema_scale.io.raw`)
returns pixels and calibration as stored; this module converts the calibration to nm,
refuses what is not a real-space image with a typed :class:`MicrographError`, and builds
the ``xarray.DataArray`` described in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from antema_scale.io.errors import (
    CorruptFileError,
    EmptyImageError,
    MicrographError,
    MissingPixelSizeError,
    NotAnImageError,
    ReciprocalSpaceError,
    UnknownFormatError,
)
from antema_scale.io.hdf5_format import read_hdf5
from antema_scale.io.ncem_formats import read_dm, read_emd, read_mrc, read_ser
from antema_scale.io.raster_format import read_raster
from antema_scale.io.raw import AxisCalibration, RawMicrograph
from antema_scale.io.tiff_format import read_tiff
from antema_scale.io.units import UnitKind, classify_unit, nm_per_unit, seconds_per_unit

__all__ = [
    "SUPPORTED_SUFFIXES",
    "file_sha256",
    "read_micrograph",
    "tia_series_for",
]

Reader = Callable[[Path], RawMicrograph]

_READERS_BY_SUFFIX: dict[str, Reader] = {
    ".dm3": read_dm,
    ".dm4": read_dm,
    ".ser": read_ser,
    ".emd": read_emd,
    ".mrc": read_mrc,
    ".rec": read_mrc,
    ".st": read_mrc,
    ".ali": read_mrc,
    ".tif": read_tiff,
    ".tiff": read_tiff,
    ".h5": read_hdf5,
    ".hdf5": read_hdf5,
    ".hdf": read_hdf5,
    ".png": read_raster,
    ".jpg": read_raster,
    ".jpeg": read_raster,
    ".bmp": read_raster,
}

#: File suffixes :func:`read_micrograph` accepts (``.emi`` resolves to its ``_1.ser``).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_READERS_BY_SUFFIX) | {".emi"}

_MAGIC_READERS: tuple[tuple[bytes, Reader], ...] = (
    (b"II*\x00", read_tiff),
    (b"MM\x00*", read_tiff),
    (b"II+\x00", read_tiff),
    (b"\x89HDF\r\n\x1a\n", read_hdf5),
    (b"\x89PNG\r\n\x1a\n", read_raster),
    (b"\xff\xd8\xff", read_raster),
    (b"\x00\x00\x00\x03", read_dm),
    (b"\x00\x00\x00\x04", read_dm),
    (b"II\x97\x01", read_ser),
)

_HASH_BLOCK_BYTES = 1 << 22
_ISOTROPY_RELATIVE_TOLERANCE = 1e-6


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, as lowercase hex.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def tia_series_for(emi_path: Path) -> Path:
    """The first ``.ser`` series that belongs to a TIA ``.emi`` file (``<stem>_1.ser``).

    Raises
    ------
    CorruptFileError
        If no ``<stem>_<n>.ser`` file lies beside the ``.emi``.
    """
    candidates = sorted(emi_path.parent.glob(f"{emi_path.stem}_*.ser"))
    if not candidates:
        raise CorruptFileError(emi_path, "TIA .emi file without its .ser data file beside it")
    return candidates[0]


def _reader_for(path: Path) -> Reader:
    reader = _READERS_BY_SUFFIX.get(path.suffix.lower())
    if reader is not None:
        return reader
    with open(path, "rb") as handle:
        head = handle.read(16)
    for magic, magic_reader in _MAGIC_READERS:
        if head.startswith(magic):
            return magic_reader
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    raise UnknownFormatError(
        path, f"unknown file format (suffix {path.suffix or 'none'!r}; supported: {supported})"
    )


def _read_raw(path: Path) -> RawMicrograph:
    reader = _reader_for(path)
    try:
        return reader(path)
    except MicrographError:
        raise
    except MemoryError:
        raise
    except Exception as error:  # library errors on damaged input become one typed error
        kind = reader.__name__.removeprefix("read_")
        raise CorruptFileError(
            path, f"cannot be parsed as {kind} ({type(error).__name__}: {error})"
        ) from error


def _squeeze(raw: RawMicrograph) -> tuple[np.ndarray, list[AxisCalibration]]:
    """Drop length-1 axes and their calibration (a (1, 2048) array is a spectrum)."""
    if raw.data.size == 0:
        return raw.data, list(raw.axes)
    keep = [index for index, size in enumerate(raw.data.shape) if size != 1]
    data = raw.data.reshape([raw.data.shape[index] for index in keep])
    return data, [raw.axes[index] for index in keep]


def _check_dimensions(path: Path, data: np.ndarray, axes: list[AxisCalibration]) -> None:
    if data.size == 0:
        raise EmptyImageError(path, f"image has no pixels (shape {data.shape})")
    if data.ndim < 2:
        raise NotAnImageError(
            path, f"{data.ndim}-D data of length {data.size} (a spectrum or profile), not an image"
        )
    if data.ndim > 3:
        raise NotAnImageError(
            path, f"{data.ndim}-D data {data.shape} (e.g. 4-D STEM), not an image or a movie"
        )
    if np.iscomplexobj(data):
        raise NotAnImageError(path, "complex-valued data (an FFT or exit wave), not an image")
    if data.dtype.kind not in "biuf":
        raise NotAnImageError(path, f"pixel type {data.dtype} is not numeric")
    for axis in axes:
        kind = classify_unit(axis.unit)
        if kind is UnitKind.ENERGY:
            raise NotAnImageError(path, f"an axis is in energy units ({axis.unit!r}): a spectrum")


def _check_real_space(path: Path, spatial: list[AxisCalibration]) -> None:
    for axis in spatial:
        kind = classify_unit(axis.unit)
        if kind is UnitKind.RECIPROCAL:
            raise ReciprocalSpaceError(
                path,
                f"pixel size in reciprocal units ({axis.unit!r}): a diffraction pattern "
                "or FFT, not a real-space image",
            )
        if kind is UnitKind.ANGLE:
            raise ReciprocalSpaceError(
                path,
                f"pixel size in angular units ({axis.unit!r}): a diffraction pattern, "
                "not a real-space image",
            )


def _user_pixel_size(pixel_size_nm: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(pixel_size_nm, tuple | list):
        if len(pixel_size_nm) != 2:
            raise ValueError(f"pixel_size_nm needs (y, x); got {pixel_size_nm!r}")
        y_nm, x_nm = (float(value) for value in pixel_size_nm)
    else:
        y_nm = x_nm = float(pixel_size_nm)
    for value in (y_nm, x_nm):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"pixel_size_nm must be positive and finite; got {pixel_size_nm!r}")
    return y_nm, x_nm


def _file_pixel_size(path: Path, spatial: list[AxisCalibration]) -> tuple[float, float]:
    sizes: list[float] = []
    for name, axis in zip(("y", "x"), spatial, strict=True):
        kind = classify_unit(axis.unit)
        step = axis.step
        if kind is not UnitKind.LENGTH or step is None or not math.isfinite(step) or step <= 0:
            found = f"step {step!r} with unit {axis.unit!r}" if step is not None else "no step"
            raise MissingPixelSizeError(
                path,
                f"no usable {name} pixel size in the file ({found}); "
                "give one with pixel_size_nm / --pixel-size",
            )
        sizes.append(step * nm_per_unit(axis.unit))
    return sizes[0], sizes[1]


def _check_values(path: Path, data: np.ndarray) -> None:
    if data.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise EmptyImageError(path, f"{bad} of {data.size} pixels are NaN or infinite")
    frames = data.reshape((-1, *data.shape[-2:]))
    for index, frame in enumerate(frames):
        low, high = frame.min(), frame.max()
        if low == high:
            where = f"frame {index}" if data.ndim == 3 else "image"
            raise EmptyImageError(path, f"{where} is constant (every pixel = {low})")


def _frame_coords(
    axis: AxisCalibration, count: int
) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, str | float]]:
    coords: dict[str, tuple[str, np.ndarray]] = {"frame": ("frame", np.arange(count))}
    attrs: dict[str, str | float] = {"frame_axis_unit": axis.unit}
    if axis.step is not None and math.isfinite(axis.step):
        attrs["frame_axis_step"] = float(axis.step)
        if classify_unit(axis.unit) is UnitKind.TIME:
            step_s = axis.step * seconds_per_unit(axis.unit)
            coords["time"] = ("frame", np.arange(count) * step_s)
    return coords, attrs


def read_micrograph(
    path: str | Path,
    *,
    pixel_size_nm: float | tuple[float, float] | None = None,
    sha256: str | None = None,
) -> xr.DataArray:
    """Read a microscope image or image series with its pixel size in nanometres.

    Parameters
    ----------
    path : str or pathlib.Path
        dm3, dm4, ser (or its emi), emd (Berkeley, Velox), mrc, tif (ImageJ, DM export,
        FEI, Zeiss, resolution tags), HDF5 with a scale attribute, png/jpg/bmp.
    pixel_size_nm : float or (float, float), optional
        Pixel size in nm, isotropic or ``(y, x)``. Overrides the file's calibration;
        needed for files without one (png, jpg, uncalibrated tif).
    sha256 : str, optional
        The file's SHA-256 when the caller has already computed it (ingest does), so the
        file is not hashed twice; computed here otherwise.

    Returns
    -------
    xarray.DataArray
        Dims ``("y", "x")`` or ``("frame", "y", "x")``; coords ``y``, ``x`` in nm at pixel
        centres, ``frame`` (index) and ``time`` in s when the file gives a frame interval.
        Attrs: ``pixel_size_nm_y``, ``pixel_size_nm_x`` (nm), ``pixel_size_nm`` (only when
        isotropic), ``pixel_size_origin`` (``"file"``/``"user"``), ``units_original``,
        ``source``, ``sha256``, ``format`` and ``instrument_*`` values.

    Raises
    ------
    UnknownFormatError, CorruptFileError, ReciprocalSpaceError, MissingPixelSizeError,
    NotAnImageError, EmptyImageError
        All subclasses of :class:`~antema_scale.io.MicrographError` (a ``ValueError``);
        the message names the file and the problem.
    FileNotFoundError
        If ``path`` does not exist.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if source.suffix.lower() == ".emi":
        source = tia_series_for(source)
    if source.stat().st_size == 0:
        raise CorruptFileError(source, "file is empty (0 bytes)")
    raw = _read_raw(source)
    data, axes = _squeeze(raw)
    _check_dimensions(source, data, axes)
    spatial = axes[-2:]
    _check_real_space(source, spatial)
    if pixel_size_nm is not None:
        y_nm, x_nm = _user_pixel_size(pixel_size_nm)
        origin = "user"
    else:
        y_nm, x_nm = _file_pixel_size(source, spatial)
        origin = "file"
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    _check_values(source, data)
    checksum = sha256 or file_sha256(source)
    return _as_data_array(source, data, axes, raw, (y_nm, x_nm), origin, checksum)


def _as_data_array(
    source: Path,
    data: np.ndarray,
    axes: list[AxisCalibration],
    raw: RawMicrograph,
    pixel_nm: tuple[float, float],
    origin: str,
    sha256: str,
) -> xr.DataArray:
    y_nm, x_nm = pixel_nm
    ny, nx = data.shape[-2:]
    coords: dict[str, tuple[str, np.ndarray]] = {
        "y": ("y", (np.arange(ny) + 0.5) * y_nm),
        "x": ("x", (np.arange(nx) + 0.5) * x_nm),
    }
    attrs: dict[str, str | float | int | bool] = {
        "pixel_size_nm_y": float(y_nm),
        "pixel_size_nm_x": float(x_nm),
    }
    if math.isclose(y_nm, x_nm, rel_tol=_ISOTROPY_RELATIVE_TOLERANCE):
        attrs["pixel_size_nm"] = float(y_nm)
    dims: tuple[str, ...] = ("y", "x")
    if data.ndim == 3:
        dims = ("frame", "y", "x")
        frame_coords, frame_attrs = _frame_coords(axes[0], data.shape[0])
        coords.update(frame_coords)
        attrs.update(frame_attrs)
    attrs.update(
        {
            "pixel_size_origin": origin,
            "units_original": ",".join(axis.unit for axis in axes[-2:]),
            "source": str(source.resolve()),
            "sha256": sha256,
            "format": raw.format,
        }
    )
    attrs.update({f"instrument_{key}": value for key, value in raw.instrument.items()})
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="image")
