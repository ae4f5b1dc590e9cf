"""Readers for the formats ncempy understands: DM3/DM4, TIA SER(+EMI), EMD, MRC.

Each function returns a :class:`~antema_scale.io.raw.RawMicrograph` with calibration
exactly as stored in the file; conversion to nm happens in :mod:`antema_scale.io.micrograph`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from antema_scale.io.errors import CorruptFileError, NotAnImageError, ReciprocalSpaceError
from antema_scale.io.raw import AxisCalibration, InstrumentValue, RawMicrograph

__all__ = ["read_dm", "read_emd", "read_mrc", "read_ser"]

#: TIA series data types (SER header ``DataTypeID``).
_SER_1D_SPECTRA = 0x4120
_SER_2D_IMAGES = 0x4122

_DM_INSTRUMENT_TAGS: dict[str, str] = {
    "Microscope Info.Name": "microscope",
    "Microscope Info.Voltage": "voltage_v",
    "Microscope Info.Indicated Magnification": "magnification",
    "Microscope Info.Illumination Mode": "illumination_mode",
    "Microscope Info.Imaging Mode": "imaging_mode",
    "Microscope Info.Operation Mode": "operation_mode",
    "DataBar.Acquisition Date": "acquisition_date",
    "DataBar.Acquisition Time": "acquisition_time",
    "Acquisition.Device.Name": "detector",
}

_SER_INSTRUMENT_KEYS: dict[str, str] = {
    "Microscope []": "microscope",
    "Mode []": "mode",
    "Magnification [x]": "magnification",
    "AcquireDate": "acquisition_date",
    "CameraNamePath": "detector",
    "FrameTime": "frame_time_s",
    "DwellTimePath": "dwell_time_s",
}


def _json_safe(value: Any) -> InstrumentValue | None:
    """Turn a metadata value into a JSON-safe scalar, or None when it is not one."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        return None if text in ("", "None") else text
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    return None


def _pick_instrument(
    metadata: Mapping[str, Any], names: Mapping[str, str], *, suffix_match: bool = False
) -> dict[str, InstrumentValue]:
    """Copy the metadata entries named in ``names`` (file key -> our key) as scalars."""
    picked: dict[str, InstrumentValue] = {}
    for key, value in metadata.items():
        for wanted, ours in names.items():
            hit = key.endswith(wanted) if suffix_match else key == wanted
            if hit and ours not in picked:
                safe = _json_safe(value)
                if safe is not None and safe != "":
                    picked[ours] = safe
    return picked


def read_dm(path: Path) -> RawMicrograph:
    """Read a Gatan DigitalMicrograph DM3/DM4 file (first non-thumbnail dataset).

    Parameters
    ----------
    path : pathlib.Path
        The ``.dm3`` or ``.dm4`` file.

    Returns
    -------
    RawMicrograph
        Pixels in file axis order (``(y, x)`` or ``(z, y, x)``) with the DM calibration
        per axis (``pixelSize`` in ``pixelUnit``).
    """
    from ncempy.io import dm

    # on_memory=False: plain file reads. With the default memory map, arrays handed out by
    # ncempy can still view the map when the file closes ("BufferError: cannot close
    # exported pointers exist"), which we met on Dask process workers.
    with dm.fileDM(path, on_memory=False) as dm_file:
        dataset = dm_file.getDataset(0)
        tags = dict(dm_file.allTags)
    data = np.asarray(dataset["data"])
    steps = [float(step) for step in dataset["pixelSize"]]
    units = [str(unit) for unit in dataset["pixelUnit"]]
    if len(steps) != data.ndim:
        raise CorruptFileError(
            path, f"DM calibration has {len(steps)} axes but the data has {data.ndim}"
        )
    axes = [AxisCalibration(step, unit) for step, unit in zip(steps, units, strict=True)]
    instrument = _pick_instrument(tags, _DM_INSTRUMENT_TAGS, suffix_match=True)
    return RawMicrograph(data, axes, path.suffix.lower().lstrip("."), instrument)


def _is_tem_diffraction_mode(mode: str) -> bool:
    """True when a TIA mode string says TEM (not STEM) with the diffraction projector."""
    words = mode.split()
    return bool(words) and words[0] == "TEM" and "Diffraction" in words


def read_ser(path: Path) -> RawMicrograph:
    """Read a FEI TIA ``.ser`` file (its ``.emi`` companion, when present, adds metadata).

    Images and image series are read; series become ``(frame, y, x)``. TIA stores image
    calibration in metres without a unit string, so a TEM-mode diffraction acquisition
    (mode string ``"TEM ... Diffraction"`` in the EMI) is refused as reciprocal space.

    Parameters
    ----------
    path : pathlib.Path
        The ``.ser`` file.

    Returns
    -------
    RawMicrograph
        Pixels with calibration in metres.
    """
    from ncempy.io import ser

    with ser.fileSER(path) as ser_file:
        data_type = int(ser_file.head["DataTypeID"])
    if data_type == _SER_1D_SPECTRA:
        raise NotAnImageError(path, "TIA series of 1-D spectra, not images")
    if data_type != _SER_2D_IMAGES:
        raise CorruptFileError(path, f"unknown TIA data type 0x{data_type:04x}")
    content = ser.serReader(path)
    if "data" not in content:
        raise NotAnImageError(path, "TIA file holds no data set")
    data = np.asarray(content["data"])
    calibration_x, calibration_y = (float(step) for step in content["pixelSize"][:2])
    axes = [AxisCalibration(calibration_y, "m"), AxisCalibration(calibration_x, "m")]
    if data.ndim == 3:
        axes.insert(0, AxisCalibration(None, ""))
    metadata = content.get("metadata") or {}
    instrument = _pick_instrument(metadata, _SER_INSTRUMENT_KEYS)
    voltage_kv = _json_safe(metadata.get("High tension [kV]"))
    if isinstance(voltage_kv, int | float) and not isinstance(voltage_kv, bool):
        instrument["voltage_v"] = float(voltage_kv) * 1000.0
    mode = str(metadata.get("Mode []", ""))
    if _is_tem_diffraction_mode(mode):
        raise ReciprocalSpaceError(
            path, f"TIA acquisition mode {mode.strip()!r} is a diffraction pattern"
        )
    return RawMicrograph(data, axes, "ser", instrument)


def _is_berkeley_emd(path: Path) -> bool:
    with h5py.File(path, "r") as h5:
        found: list[str] = []

        def visit(name: str, item: h5py.Group | h5py.Dataset) -> None:
            if isinstance(item, h5py.Group) and item.attrs.get("emd_group_type") == 1:
                found.append(name)

        h5.visititems(visit)
    return bool(found)


def read_emd(path: Path) -> RawMicrograph:
    """Read a Berkeley EMD or a Thermo Fisher Velox EMD file (first data set).

    Parameters
    ----------
    path : pathlib.Path
        The ``.emd`` (HDF5) file.

    Returns
    -------
    RawMicrograph
        Pixels with the calibration of the file's dimension vectors (Berkeley) or of the
        Velox ``BinaryResult`` metadata.
    """
    if _is_berkeley_emd(path):
        return _read_berkeley_emd(path)
    with h5py.File(path, "r") as h5:
        if "Data" in h5 and isinstance(h5["Data"], h5py.Group):
            return _read_velox_emd(path, h5["Data"])
    raise NotAnImageError(path, "EMD file holds neither a Berkeley EMD data set nor Velox data")


def _read_berkeley_emd(path: Path) -> RawMicrograph:
    from ncempy.io import emd

    with emd.fileEMD(path) as emd_file:
        loaded = emd_file.get_emdgroup(0)
        microscope = (
            {key: value for key, value in emd_file.microscope.attrs.items()}
            if emd_file.microscope is not None
            else {}
        )
    if loaded is None:
        raise CorruptFileError(path, "Berkeley EMD data set cannot be loaded")
    data, dims = loaded
    axes = [_berkeley_axis(values, str(units)) for values, _name, units in dims]
    instrument = _pick_instrument(
        microscope,
        {"name": "microscope", "high tension": "voltage_v", "magnification": "magnification"},
    )
    return RawMicrograph(np.asarray(data), axes, "emd-berkeley", instrument)


def _berkeley_axis(values: np.ndarray, units: str) -> AxisCalibration:
    vector = np.asarray(values, dtype=np.float64)
    if units in ("pixels", "") or vector.size < 2:
        return AxisCalibration(None, "" if units == "pixels" else units)
    return AxisCalibration(float(vector[1] - vector[0]), units)


def _velox_metadata(group: h5py.Group) -> dict[str, Any]:
    raw = np.asarray(group["Metadata"][:, 0]).tobytes().rstrip(b"\0")
    return json.loads(raw.decode("utf-8", errors="replace"))


def _read_velox_emd(path: Path, data_group: h5py.Group) -> RawMicrograph:
    if "Image" not in data_group or not list(data_group["Image"]):
        kinds = ", ".join(sorted(data_group)) or "nothing"
        raise NotAnImageError(path, f"Velox EMD without image data (holds: {kinds})")
    image_group = data_group["Image"][next(iter(data_group["Image"]))]
    frames = np.asarray(image_group["Data"][()])  # Velox stores (y, x, frame)
    data = np.moveaxis(frames, -1, 0) if frames.ndim == 3 else frames
    metadata = _velox_metadata(image_group)
    result = metadata.get("BinaryResult", {})
    pixel = result.get("PixelSize", {})
    axes = [
        AxisCalibration(_to_float(pixel.get("height")), str(result.get("PixelUnitY", ""))),
        AxisCalibration(_to_float(pixel.get("width")), str(result.get("PixelUnitX", ""))),
    ]
    if data.ndim == 3:
        axes.insert(0, AxisCalibration(None, ""))
    optics = metadata.get("Optics", {})
    instrument_info = metadata.get("Instrument", {})
    candidates = {
        "microscope": instrument_info.get("InstrumentModel"),
        "voltage_v": _to_float(optics.get("AccelerationVoltage")),
        "magnification": _to_float(optics.get("NominalMagnification")),
        "detector": result.get("Detector"),
        "mode": optics.get("TemOperatingSubMode"),
    }
    instrument = {
        key: safe for key, value in candidates.items() if (safe := _json_safe(value)) is not None
    }
    return RawMicrograph(data, axes, "emd-velox", instrument)


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_mrc(path: Path) -> RawMicrograph:
    """Read an MRC/CCP4 file (``.mrc``, ``.rec``, ``.st``, ``.ali``).

    Parameters
    ----------
    path : pathlib.Path
        The MRC file.

    Returns
    -------
    RawMicrograph
        ``(z, y, x)`` pixels with voxel sizes in Å from the header cell.
    """
    from ncempy.io import mrc

    content = mrc.mrcReader(path)
    data = np.asarray(content["data"])
    steps = [float(step) for step in np.atleast_1d(content["pixelSize"])]
    if len(steps) != data.ndim:
        raise CorruptFileError(
            path, f"MRC voxel size has {len(steps)} axes but the data has {data.ndim}"
        )
    axes = [AxisCalibration(step if step > 0 else None, "A") for step in steps]
    return RawMicrograph(data, axes, "mrc", {})
