"""TIFF micrographs and where each writer hides the pixel size.

Calibration sources, tried in this order (the first that is present wins):

1. Gatan DigitalMicrograph export: private tags 65009/65010 (x/y step) and 65003/65004
   (x/y unit).
2. FEI/Thermo Fisher SEM/FIB: ``[Scan] PixelWidth/PixelHeight`` in metres (FEI_HELIOS or
   FEI_SFEG tags).
3. Zeiss SmartSEM: the CZ_SEM tag, ``ap_image_pixel_size`` (or ``ap_pixel_size``).
4. ImageJ: ``unit=`` in the ImageJ description, X/YResolution in pixels per unit.
5. Plain TIFF resolution tags in centimetres or inches. Inch resolutions of common
   screen/print values (72, 96, 150, 300, ... dpi) are defaults written by image
   software, not calibrations, and are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from antema_scale.io.errors import NotAnImageError
from antema_scale.io.raw import AxisCalibration, RawMicrograph, rgb_to_grey

__all__ = ["read_tiff"]

_DM_X_UNIT, _DM_Y_UNIT, _DM_X_STEP, _DM_Y_STEP = 65003, 65004, 65009, 65010
_DEFAULT_DPI = frozenset({72.0, 96.0, 100.0, 150.0, 200.0, 240.0, 300.0, 600.0, 1200.0})
_RESUNIT_INCH, _RESUNIT_CENTIMETER = 2, 3


def _rational(value: Any) -> float | None:
    """A TIFF RATIONAL (numerator, denominator) or number as float."""
    try:
        if isinstance(value, tuple):
            numerator, denominator = value
            return float(numerator) / float(denominator) if denominator else None
        return float(value)
    except (TypeError, ValueError):
        return None


def _tag_value(page: tifffile.TiffPage, code: int) -> Any:
    tag = page.tags.get(code)
    return None if tag is None else tag.value


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip("\0 ")
    return str(value).strip("\0 ")


def _dm_calibration(page: tifffile.TiffPage) -> tuple[AxisCalibration, AxisCalibration] | None:
    x_step, y_step = _tag_value(page, _DM_X_STEP), _tag_value(page, _DM_Y_STEP)
    if x_step is None or y_step is None:
        return None
    x_unit, y_unit = _tag_value(page, _DM_X_UNIT), _tag_value(page, _DM_Y_UNIT)
    return (
        AxisCalibration(float(y_step), _text(y_unit or "")),
        AxisCalibration(float(x_step), _text(x_unit or "")),
    )


def _fei_calibration(tif: tifffile.TiffFile) -> tuple[AxisCalibration, AxisCalibration] | None:
    metadata = tif.fei_metadata
    if not metadata:
        return None
    for section in ("Scan", "EScan", "IScan"):
        values = metadata.get(section, {})
        width, height = _rational(values.get("PixelWidth")), _rational(values.get("PixelHeight"))
        if width and height:
            return AxisCalibration(height, "m"), AxisCalibration(width, "m")
    return None


def _zeiss_calibration(
    tif: tifffile.TiffFile,
) -> tuple[AxisCalibration, AxisCalibration] | None:
    metadata = tif.sem_metadata
    if not metadata:
        return None
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        entry = metadata.get(key)
        if isinstance(entry, tuple) and len(entry) >= 3:
            step = _rational(entry[1])
            unit = str(entry[2])
            return AxisCalibration(step, unit), AxisCalibration(step, unit)
    return None


def _imagej_calibration(
    tif: tifffile.TiffFile, page: tifffile.TiffPage
) -> tuple[AxisCalibration, AxisCalibration] | None:
    metadata = tif.imagej_metadata
    if not metadata or "unit" not in metadata:
        return None
    x_per_unit = _rational(_tag_value(page, 282))
    y_per_unit = _rational(_tag_value(page, 283)) or x_per_unit
    if not x_per_unit or not y_per_unit:
        return None
    unit = _text(metadata["unit"]).replace("\\u00B5", "µ")
    return AxisCalibration(1.0 / y_per_unit, unit), AxisCalibration(1.0 / x_per_unit, unit)


def _resolution_calibration(
    page: tifffile.TiffPage,
) -> tuple[AxisCalibration, AxisCalibration] | None:
    unit_code = _tag_value(page, 296)
    x_per_unit = _rational(_tag_value(page, 282))
    y_per_unit = _rational(_tag_value(page, 283)) or x_per_unit
    if not x_per_unit or not y_per_unit or unit_code is None:
        return None
    if int(unit_code) == _RESUNIT_CENTIMETER:
        return AxisCalibration(1.0 / y_per_unit, "cm"), AxisCalibration(1.0 / x_per_unit, "cm")
    if (
        int(unit_code) == _RESUNIT_INCH
        and not {
            round(x_per_unit, 3),
            round(y_per_unit, 3),
        }
        <= _DEFAULT_DPI
    ):
        inch_in_mm = 25.4
        return (
            AxisCalibration(inch_in_mm / y_per_unit, "mm"),
            AxisCalibration(inch_in_mm / x_per_unit, "mm"),
        )
    return None


def _frame_axis(tif: tifffile.TiffFile) -> AxisCalibration:
    metadata = tif.imagej_metadata or {}
    interval = _rational(metadata.get("finterval"))
    if interval:
        return AxisCalibration(interval, "s")
    return AxisCalibration(None, "")


def read_tiff(path: Path) -> RawMicrograph:
    """Read a TIFF micrograph and its calibration (see the module docstring for sources).

    Parameters
    ----------
    path : pathlib.Path
        A ``.tif``/``.tiff`` file; multi-page stacks become ``(frame, y, x)``.

    Returns
    -------
    RawMicrograph
        Pixels (RGB turned to grey) and the y/x calibration of the first source found, or
        ``None`` steps when the file has no calibration.
    """
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise NotAnImageError(path, "TIFF file without image data")
        series = tif.series[0]
        data = series.asarray()
        series_axes = series.axes
        page = tif.pages.first
        sources = (
            ("tiff-dm", lambda: _dm_calibration(page)),
            ("tiff-fei", lambda: _fei_calibration(tif)),
            ("tiff-zeiss", lambda: _zeiss_calibration(tif)),
            ("tiff-imagej", lambda: _imagej_calibration(tif, page)),
            ("tiff-resolution", lambda: _resolution_calibration(page)),
        )
        fmt, calibration = "tiff", None
        for name, find in sources:
            calibration = find()
            if calibration is not None:
                fmt = name
                break
        frame_axis = _frame_axis(tif)
    if series_axes.endswith("S") and data.shape[-1] in (3, 4):
        data = rgb_to_grey(data, path)
    y_axis, x_axis = calibration or (AxisCalibration(None, ""), AxisCalibration(None, ""))
    leading = [frame_axis] + [AxisCalibration(None, "")] * max(0, data.ndim - 3)
    axes = leading[: max(0, data.ndim - 2)] + [y_axis, x_axis]
    return RawMicrograph(np.asarray(data), axes, fmt, {})
