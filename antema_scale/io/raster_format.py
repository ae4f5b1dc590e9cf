"""Plain raster images (PNG, JPEG, BMP, GIF): pixels only, the user gives the pixel size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from antema_scale.io.raw import AxisCalibration, RawMicrograph, rgb_to_grey

__all__ = ["read_raster"]


def read_raster(path: Path) -> RawMicrograph:
    """Read a PNG/JPEG/BMP image as grey pixels; these formats carry no pixel size.

    Parameters
    ----------
    path : pathlib.Path
        The image file.

    Returns
    -------
    RawMicrograph
        ``(y, x)`` grey pixels (8 or 16 bit kept; colour turned to float32 luminance),
        with no calibration.
    """
    with Image.open(path) as image:
        image.load()
        if image.mode == "P":
            image = image.convert("RGB")
        elif image.mode == "LA":
            image = image.convert("L")
        data = np.asarray(image)
        fmt = (image.format or path.suffix.lstrip(".")).lower()
    if data.ndim == 3:
        data = rgb_to_grey(data, path)
    axes = [AxisCalibration(None, ""), AxisCalibration(None, "")]
    return RawMicrograph(data, axes, fmt, {})
