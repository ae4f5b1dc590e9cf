"""What every format reader hands to :func:`antema_scale.io.read_micrograph`.

A format reader only knows its file format: it returns the pixel array, one
:class:`AxisCalibration` per array axis (step and unit exactly as the file stores them),
and a few instrument values. Unit conversion, validation and building the
``xarray.DataArray`` happen once, in :mod:`antema_scale.io.micrograph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from antema_scale.io.errors import NotAnImageError

__all__ = ["AxisCalibration", "InstrumentValue", "RawMicrograph", "rgb_to_grey"]

#: JSON-safe scalar kept as instrument metadata.
InstrumentValue = str | int | float | bool


@dataclass(frozen=True)
class AxisCalibration:
    """Step between neighbouring pixels along one array axis, as stored in the file.

    Attributes
    ----------
    step : float or None
        Pixel step in ``unit`` (None when the file has none).
    unit : str
        Unit string exactly as in the file (``"n_m"``, ``"µm"``, ``"1/nm"``, ``""``).
    """

    step: float | None
    unit: str


@dataclass
class RawMicrograph:
    """Pixels and calibration as one file format stores them.

    Attributes
    ----------
    data : numpy.ndarray
        Pixel values, axes in file order; the last two axes are rows (y) and columns (x).
    axes : list of AxisCalibration
        One entry per axis of ``data``.
    format : str
        Short format name (``"dm4"``, ``"ser"``, ``"emd-velox"``, ``"tiff-imagej"``, ...).
    instrument : dict
        Instrument metadata as JSON-safe scalars, keys without the ``instrument_`` prefix.
    """

    data: np.ndarray
    axes: list[AxisCalibration]
    format: str
    instrument: dict[str, InstrumentValue] = field(default_factory=dict)


def rgb_to_grey(data: np.ndarray, path: str | Path) -> np.ndarray:
    """Turn an RGB(A) image (channels last) into one grey channel.

    Grey images saved as RGB (all channels equal) keep their values and dtype; true colour
    images become float32 luminance (ITU-R BT.601 weights). An alpha channel is dropped.

    Parameters
    ----------
    data : numpy.ndarray
        Array whose last axis holds 3 or 4 colour samples.
    path : str or pathlib.Path
        The file, for the error message.

    Returns
    -------
    numpy.ndarray
        The array without its colour axis.
    """
    if data.shape[-1] not in (3, 4):
        raise NotAnImageError(path, f"last axis has {data.shape[-1]} samples; expected RGB(A)")
    rgb = data[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (rgb.astype(np.float32) @ weights).astype(np.float32)
