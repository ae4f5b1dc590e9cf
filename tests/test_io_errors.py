"""read_micrograph on made-up files: calibration sources and every typed error."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from antema_scale.io import (
    CorruptFileError,
    EmptyImageError,
    MicrographError,
    MissingPixelSizeError,
    NotAnImageError,
    ReciprocalSpaceError,
    UnknownFormatError,
    read_micrograph,
)
from antema_scale.io.units import UnitKind, classify_unit, nm_per_unit


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=shape, dtype=np.uint16)


def _write_h5(path: Path, data: np.ndarray, **attrs: object) -> Path:
    with h5py.File(path, "w") as h5:
        dataset = h5.create_dataset("data", data=data)
        for key, value in attrs.items():
            dataset.attrs[key] = value
    return path


def _write_berkeley_emd(path: Path, data: np.ndarray, step: float, unit: str) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["version_major"] = 0
        h5.attrs["version_minor"] = 2
        group = h5.create_group("data/single")
        group.attrs["emd_group_type"] = 1
        group.create_dataset("data", data=data)
        for index, size in enumerate(data.shape, start=1):
            dim = group.create_dataset(f"dim{index}", data=np.arange(size) * step)
            dim.attrs["name"] = f"axis{index}"
            dim.attrs["units"] = unit
    return path


# --- units -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("m", 1e9),
        ("mm", 1e6),
        ("µm", 1e3),
        ("\u03bcm", 1e3),
        ("um", 1e3),
        ("micron", 1e3),
        ("nm", 1.0),
        ("n_m", 1.0),
        ("Å", 0.1),
        ("\u212b", 0.1),
        ("A", 0.1),
        ("pm", 1e-3),
    ],
)
def test_length_units_to_nm(unit: str, factor: float) -> None:
    assert classify_unit(unit) is UnitKind.LENGTH
    assert nm_per_unit(unit) == pytest.approx(factor)


@pytest.mark.parametrize(
    ("unit", "kind"),
    [
        ("1/nm", UnitKind.RECIPROCAL),
        ("1/n_m", UnitKind.RECIPROCAL),
        ("nm^-1", UnitKind.RECIPROCAL),
        ("1/Å", UnitKind.RECIPROCAL),
        ("1/m", UnitKind.RECIPROCAL),
        ("mrad", UnitKind.ANGLE),
        ("eV", UnitKind.ENERGY),
        ("s", UnitKind.TIME),
        ("", UnitKind.NONE),
        ("pixels", UnitKind.NONE),
    ],
)
def test_unit_kinds(unit: str, kind: UnitKind) -> None:
    assert classify_unit(unit) is kind


# --- calibration sources we have no real file for ------------------------------------------


def test_hdf5_anisotropic_scale_per_axis(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "a.h5", _noise((20, 30)), scale=[2.0, 5.0], scale_unit="Å")
    image = read_micrograph(path)
    assert image.attrs["pixel_size_nm_y"] == pytest.approx(0.2)
    assert image.attrs["pixel_size_nm_x"] == pytest.approx(0.5)


def test_berkeley_emd_movie_with_time_axis(tmp_path: Path) -> None:
    path = tmp_path / "movie.emd"
    with h5py.File(path, "w") as h5:
        h5.attrs["version_major"] = 0
        group = h5.create_group("data/movie")
        group.attrs["emd_group_type"] = 1
        group.create_dataset("data", data=_noise((4, 16, 16)))
        for index, (step, unit) in enumerate([(0.5, "s"), (0.1, "n_m"), (0.1, "n_m")], 1):
            dim = group.create_dataset(
                f"dim{index}", data=np.arange(16)[: [4, 16, 16][index - 1]] * step
            )
            dim.attrs["units"] = unit
    image = read_micrograph(path)
    assert image.dims == ("frame", "y", "x")
    assert image.attrs["pixel_size_nm"] == pytest.approx(0.1)
    np.testing.assert_allclose(image["time"].values, [0.0, 0.5, 1.0, 1.5])


def _write_velox(
    path: Path, frames: np.ndarray | None, width_m: float, height_m: float, unit: str = "m"
) -> Path:
    """A minimal Velox EMD: Data/Image/<uuid>/Data (y, x, frame) + JSON Metadata column."""
    import json

    metadata = {
        "BinaryResult": {
            "PixelSize": {"width": str(width_m), "height": str(height_m)},
            "PixelUnitX": unit,
            "PixelUnitY": unit,
            "Detector": "HAADF",
        },
        "Optics": {"AccelerationVoltage": "300000"},
        "Instrument": {"InstrumentModel": "Test"},
    }
    encoded = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    with h5py.File(path, "w") as h5:
        if frames is None:
            h5.create_group("Data/Spectrum/0a1b")
            return path
        group = h5.create_group("Data/Image/0a1b")
        group.create_dataset("Data", data=frames)
        column = np.zeros((max(encoded.size + 16, 1024), 1), np.uint8)
        column[: encoded.size, 0] = encoded
        group.create_dataset("Metadata", data=column)
    return path


def test_velox_movie_anisotropic(tmp_path: Path) -> None:
    frames = np.stack([_noise((20, 30), seed) for seed in range(3)], axis=-1)  # (y, x, frame)
    image = read_micrograph(_write_velox(tmp_path / "v.emd", frames, 1e-9, 2e-10))
    assert image.dims == ("frame", "y", "x")
    assert image.shape == (3, 20, 30)
    np.testing.assert_array_equal(image.values[1], frames[..., 1])
    assert (image.attrs["pixel_size_nm_y"], image.attrs["pixel_size_nm_x"]) == pytest.approx(
        (0.2, 1.0)
    )
    assert image.attrs["instrument_voltage_v"] == 300000.0


def test_velox_diffraction_and_spectrum_only(tmp_path: Path) -> None:
    frames = _noise((16, 16), 1)[..., None]
    with pytest.raises(ReciprocalSpaceError, match="'1/m'"):
        read_micrograph(_write_velox(tmp_path / "dp.emd", frames, 1e7, 1e7, unit="1/m"))
    with pytest.raises(NotAnImageError, match="without image data"):
        read_micrograph(_write_velox(tmp_path / "eds.emd", None, 1e-9, 1e-9))


def test_tiff_fei_pixel_width_in_metres(tmp_path: Path) -> None:
    path = tmp_path / "fei.tif"
    header = "[User]\nUser=test\n[Scan]\nPixelWidth=2.5e-09\nPixelHeight=2.5e-09\n"
    tifffile.imwrite(path, _noise((32, 32)), extratags=[(34682, "s", 0, header, True)])
    image = read_micrograph(path)
    assert image.attrs["format"] == "tiff-fei"
    assert image.attrs["pixel_size_nm"] == pytest.approx(2.5)


def test_tiff_zeiss_cz_sem_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "zeiss.tif"
    header = "0\n0\nAP_IMAGE_PIXEL_SIZE\nImage Pixel Size = 1.234 nm\nAP_WD\nWD = 5.0 mm\n"
    tifffile.imwrite(path, _noise((32, 32)), extratags=[(34118, "s", 0, header, True)])
    image = read_micrograph(path)
    assert image.attrs["format"] == "tiff-zeiss"
    assert image.attrs["pixel_size_nm"] == pytest.approx(1.234)


def test_tiff_resolution_tags_in_centimetres(tmp_path: Path) -> None:
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, _noise((32, 32)), resolution=(1e7, 5e6), resolutionunit="CENTIMETER")
    image = read_micrograph(path)
    assert image.attrs["format"] == "tiff-resolution"
    assert image.attrs["pixel_size_nm_x"] == pytest.approx(1.0)
    assert image.attrs["pixel_size_nm_y"] == pytest.approx(2.0)


def test_imagej_stack_with_frame_interval(tmp_path: Path) -> None:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path,
        _noise((3, 20, 20)),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "nm", "axes": "TYX", "finterval": 0.25},
    )
    image = read_micrograph(path)
    assert image.dims == ("frame", "y", "x")
    assert image.attrs["pixel_size_nm"] == pytest.approx(0.5)
    np.testing.assert_allclose(image["time"].values, [0.0, 0.25, 0.5])


def test_png_needs_user_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(_noise((24, 24)).astype(np.uint8)).save(path)
    with pytest.raises(MissingPixelSizeError, match="plain.png.*pixel_size_nm"):
        read_micrograph(path)
    image = read_micrograph(path, pixel_size_nm=0.7)
    assert image.dtype == np.uint8
    assert image.attrs["pixel_size_nm"] == 0.7


def test_rgb_jpeg_becomes_grey(tmp_path: Path) -> None:
    path = tmp_path / "colour.jpg"
    grey = _noise((24, 24)).astype(np.uint8)
    Image.fromarray(np.stack([grey, grey // 2, grey // 3], axis=-1)).save(path)
    image = read_micrograph(path, pixel_size_nm=1.0)
    assert image.dims == ("y", "x")
    assert image.shape == (24, 24)


# --- errors ----------------------------------------------------------------------------


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a micrograph")
    with pytest.raises(UnknownFormatError, match=r"notes\.txt.*unknown file format"):
        read_micrograph(path)


def test_empty_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "zero.dm4"
    path.touch()
    with pytest.raises(CorruptFileError, match="empty"):
        read_micrograph(path)


def test_garbage_with_known_suffix_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dm3"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(CorruptFileError, match=r"garbage\.dm3.*cannot be parsed as dm"):
        read_micrograph(path)


@pytest.mark.parametrize(
    "name",
    [
        "particlespy/JEOL HAADF Image.dm4",
        "rosettasciio/128x128-TEM_search_1.ser",
        "ncempy/Acquisition_18.emd",
        "ncempy/temp.mrc",
    ],
)
def test_truncated_real_files_are_corrupt(formats_dir: Path, tmp_path: Path, name: str) -> None:
    source = formats_dir / name
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    with pytest.raises(CorruptFileError, match=source.name):
        read_micrograph(target)


def test_truncated_tiff_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _noise((256, 256)))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="cut.tif"):
        read_micrograph(path, pixel_size_nm=1.0)


def test_emi_without_ser_is_corrupt(formats_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "lonely.emi"
    shutil.copy(formats_dir / "rosettasciio/128x128-TEM_search.emi", target)
    with pytest.raises(CorruptFileError, match=r"\.ser"):
        read_micrograph(target)


@pytest.mark.parametrize("unit", ["1/nm", "nm^-1", "1/Å", "mrad"])
def test_reciprocal_or_angular_hdf5_is_refused(tmp_path: Path, unit: str) -> None:
    path = _write_h5(tmp_path / "diff.h5", _noise((32, 32)), scale=0.01, scale_unit=unit)
    with pytest.raises(ReciprocalSpaceError, match="diffraction pattern"):
        read_micrograph(path)
    with pytest.raises(ReciprocalSpaceError):  # a user pixel size does not make it an image
        read_micrograph(path, pixel_size_nm=1.0)


def test_reciprocal_berkeley_emd_is_refused(tmp_path: Path) -> None:
    path = _write_berkeley_emd(tmp_path / "dp.emd", _noise((32, 32)), 0.02, "1/n_m")
    with pytest.raises(ReciprocalSpaceError, match=r"dp\.emd.*'1/n_m'"):
        read_micrograph(path)


def test_reciprocal_imagej_tiff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fft.tif"
    tifffile.imwrite(
        path, _noise((32, 32)), imagej=True, resolution=(5.0, 5.0), metadata={"unit": "1/nm"}
    )
    with pytest.raises(ReciprocalSpaceError):
        read_micrograph(path)


def test_uncalibrated_tiff_with_72_dpi_is_missing_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "screen.tif"
    tifffile.imwrite(path, _noise((32, 32)), resolution=(72.0, 72.0), resolutionunit="INCH")
    with pytest.raises(MissingPixelSizeError, match="screen.tif"):
        read_micrograph(path)


def test_hdf5_without_unit_is_missing_pixel_size(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "nounit.h5", _noise((32, 32)), scale=0.5)
    with pytest.raises(MissingPixelSizeError, match="unit ''"):
        read_micrograph(path)


def test_spectrum_is_not_an_image(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "spectrum.h5", _noise((2048,)))
    with pytest.raises(NotAnImageError, match="1-D data"):
        read_micrograph(path, pixel_size_nm=1.0)


def test_single_row_is_a_spectrum_not_an_image(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "row.h5", _noise((1, 2048)), scale=1.0, scale_unit="nm")
    with pytest.raises(NotAnImageError, match="1-D data of length 2048"):
        read_micrograph(path)


def test_energy_axis_is_a_spectrum_image(tmp_path: Path) -> None:
    path = _write_berkeley_emd(tmp_path / "eels.emd", _noise((8, 16, 16)), 0.5, "eV")
    with pytest.raises(NotAnImageError, match="energy"):
        read_micrograph(path, pixel_size_nm=1.0)


def test_four_d_stem_is_not_an_image(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "4d.h5", _noise((3, 3, 8, 8)), scale=0.1, scale_unit="nm")
    with pytest.raises(NotAnImageError, match="4-D"):
        read_micrograph(path)


def test_complex_data_is_not_an_image(tmp_path: Path) -> None:
    data = np.fft.fft2(_noise((16, 16)))
    path = _write_h5(tmp_path / "fft.h5", data, scale=0.1, scale_unit="nm")
    with pytest.raises(NotAnImageError, match="complex"):
        read_micrograph(path)


def test_hdf5_without_numbers_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "text.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("notes", data="hello")
    with pytest.raises(NotAnImageError, match="numeric"):
        read_micrograph(path)


def test_constant_image_is_empty(tmp_path: Path) -> None:
    path = _write_h5(
        tmp_path / "flat.h5", np.full((32, 32), 7, np.uint16), scale=1.0, scale_unit="nm"
    )
    with pytest.raises(EmptyImageError, match="constant"):
        read_micrograph(path)


def test_constant_frame_in_movie_is_named(tmp_path: Path) -> None:
    data = _noise((3, 16, 16))
    data[1] = 0
    path = _write_h5(tmp_path / "movie.h5", data, scale=1.0, scale_unit="nm")
    with pytest.raises(EmptyImageError, match="frame 1 is constant"):
        read_micrograph(path)


def test_nan_pixels_are_refused(tmp_path: Path) -> None:
    data = _noise((16, 16)).astype(np.float32)
    data[3, 4] = np.nan
    path = _write_h5(tmp_path / "nan.h5", data, scale=1.0, scale_unit="nm")
    with pytest.raises(EmptyImageError, match="1 of 256 pixels are NaN"):
        read_micrograph(path)


def test_zero_size_image_is_empty(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "none.h5", np.zeros((0, 16), np.uint8), scale=1.0, scale_unit="nm")
    with pytest.raises(EmptyImageError, match="no pixels"):
        read_micrograph(path)


def test_bad_user_pixel_size(tmp_path: Path) -> None:
    path = _write_h5(tmp_path / "ok.h5", _noise((16, 16)))
    with pytest.raises(ValueError, match="positive"):
        read_micrograph(path, pixel_size_nm=-1.0)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        read_micrograph("/nonexistent/image.dm4")


def test_errors_are_value_errors_and_pickle() -> None:
    error = ReciprocalSpaceError("/data/x.dm4", "pixel size in 1/nm")
    assert isinstance(error, MicrographError)
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ReciprocalSpaceError
    assert str(copy) == "/data/x.dm4: pixel size in 1/nm"
