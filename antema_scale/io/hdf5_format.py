"""Plain HDF5 micrographs with the pixel size in dataset attributes.

The layout this reads is the common "one dataset plus a scale attribute" convention, e.g.
``data`` with attrs ``scale=0.3289`` and ``scale_unit="nm"``. Dataset choice: ``data``,
``image``, ``images`` or ``frames`` when present, otherwise the largest numeric dataset.
Attribute names tried for the step: ``scale``, ``pixel_size``, ``pixelSize``,
``pixel_size_nm`` (unit implied nm); for the unit: ``scale_unit``, ``pixel_size_unit``,
``pixelUnit``, ``unit``, ``units``. A scalar step applies to y and x; a sequence gives one
step per axis (the last two are y and x). Berkeley and Velox EMD files saved as ``.h5``
are handed to the EMD reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from antema_scale.io.errors import NotAnImageError
from antema_scale.io.ncem_formats import read_emd
from antema_scale.io.raw import AxisCalibration, RawMicrograph

__all__ = ["read_hdf5"]

_PREFERRED_NAMES = ("data", "image", "images", "frames")
_STEP_ATTRS = ("scale", "pixel_size", "pixelSize", "pixel_size_nm")
_UNIT_ATTRS = ("scale_unit", "pixel_size_unit", "pixelUnit", "unit", "units")


def _numeric_datasets(h5: h5py.File) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []

    def visit(_name: str, item: h5py.Group | h5py.Dataset) -> None:
        if isinstance(item, h5py.Dataset) and item.dtype.kind in "biufc" and item.ndim >= 1:
            found.append(item)

    h5.visititems(visit)
    return found


def _choose_dataset(datasets: list[h5py.Dataset]) -> h5py.Dataset:
    by_name = {item.name.rsplit("/", 1)[-1].lower(): item for item in datasets}
    for name in _PREFERRED_NAMES:
        if name in by_name:
            return by_name[name]
    return max(datasets, key=lambda item: item.size)


def _attribute_text(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _calibration(dataset: h5py.Dataset) -> list[AxisCalibration]:
    attrs = dataset.attrs
    step_name = next((name for name in _STEP_ATTRS if name in attrs), None)
    none = [AxisCalibration(None, "")] * dataset.ndim
    if step_name is None:
        return none
    unit_name = next((name for name in _UNIT_ATTRS if name in attrs), None)
    unit = _attribute_text(attrs[unit_name]) if unit_name else ""
    if step_name == "pixel_size_nm" and not unit:
        unit = "nm"
    steps = np.atleast_1d(np.asarray(attrs[step_name], dtype=np.float64))
    if steps.size == 1:
        spatial = [AxisCalibration(float(steps[0]), unit)] * 2
        return none[: dataset.ndim - 2] + spatial
    if steps.size == dataset.ndim:
        return [AxisCalibration(float(step), unit) for step in steps]
    if steps.size == 2:
        return none[: dataset.ndim - 2] + [AxisCalibration(float(step), unit) for step in steps]
    return none


def read_hdf5(path: Path) -> RawMicrograph:
    """Read an HDF5 micrograph with a scale attribute (see the module docstring).

    Parameters
    ----------
    path : pathlib.Path
        The ``.h5``/``.hdf5``/``.hdf`` file.

    Returns
    -------
    RawMicrograph
        Pixels of the chosen dataset and its calibration.
    """
    with h5py.File(path, "r") as h5:
        is_emd = "version_major" in h5.attrs or (
            "Data" in h5 and isinstance(h5["Data"], h5py.Group) and "Image" in h5["Data"]
        )
        if not is_emd:
            datasets = _numeric_datasets(h5)
            if not datasets:
                raise NotAnImageError(path, "HDF5 file without any numeric dataset")
            dataset = _choose_dataset(datasets)
            axes = _calibration(dataset)
            data = np.asarray(dataset[()])
            return RawMicrograph(data, axes, "hdf5", {})
    return read_emd(path)
