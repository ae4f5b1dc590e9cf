"""read_micrograph on every real microscope file in ../shared/data/formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from antema_scale.io import file_sha256, read_micrograph

# file, dims, shape, dtype, pixel size y (nm), pixel size x (nm), format, units_original
REAL_FILES = [
    (
        "ncempy/16_STOimage_1.ser",
        ("y", "x"),
        (1024, 1024),
        "uint16",
        0.0100127,
        0.0100127,
        "ser",
        "m,m",
    ),
    (
        "ncempy/16_STOimage.emi",
        ("y", "x"),
        (1024, 1024),
        "uint16",
        0.0100127,
        0.0100127,
        "ser",
        "m,m",
    ),
    (
        "ncempy/Acquisition_18.emd",
        ("y", "x"),
        (1024, 1024),
        "uint16",
        0.012247,
        0.012247,
        "emd-berkeley",
        "n_m,n_m",
    ),
    (
        "ncempy/Camera Ceta Imaging Micro.emd",
        ("y", "x"),
        (512, 512),
        "int16",
        3.138837,
        3.138837,
        "emd-velox",
        "m,m",
    ),
    (
        "ncempy/STEM HAADF Diffraction Micro.emd",
        ("y", "x"),
        (128, 128),
        "uint16",
        87.370796,
        87.370796,
        "emd-velox",
        "m,m",
    ),
    (
        "ncempy/dmTest_3D_int16_64,65,66.dm3",
        ("frame", "y", "x"),
        (66, 65, 64),
        "int16",
        3.0,
        0.002,
        "dm3",
        "nm,pm",
    ),
    (
        "ncempy/dmTest_3D_int16_64,65,66.dm4",
        ("frame", "y", "x"),
        (66, 65, 64),
        "int16",
        3.0,
        0.002,
        "dm4",
        "nm,pm",
    ),
    (
        "ncempy/dmTest_float32_nonSquare_diffPixelSize.dm3",
        ("y", "x"),
        (64, 128),
        "float32",
        0.2,
        1.0,
        "dm3",
        "A,nm",
    ),
    (
        "ncempy/dmTest_float32_nonSquare_diffPixelSize.dm4",
        ("y", "x"),
        (64, 128),
        "float32",
        0.2,
        1.0,
        "dm4",
        "A,nm",
    ),
    ("ncempy/temp.mrc", ("frame", "y", "x"), (3, 128, 128), "float32", 0.2, 0.2, "mrc", "A,A"),
    (
        "particlespy/JEOL HAADF Image.dm4",
        ("y", "x"),
        (112, 112),
        "float32",
        1.249014,
        1.249014,
        "dm4",
        "µm,µm",
    ),
    (
        "rosettasciio/03_Scanning Preview_1.ser",
        ("frame", "y", "x"),
        (5, 128, 128),
        "uint16",
        0.3843525,
        0.3843525,
        "ser",
        "m,m",
    ),
    (
        "rosettasciio/03_Scanning Preview.emi",
        ("frame", "y", "x"),
        (5, 128, 128),
        "uint16",
        0.3843525,
        0.3843525,
        "ser",
        "m,m",
    ),
    (
        "rosettasciio/128x128-TEM_search_1.ser",
        ("y", "x"),
        (128, 128),
        "int32",
        5.261214,
        5.261214,
        "ser",
        "m,m",
    ),
    (
        "rosettasciio/HAADFscan.mrc",
        ("y", "x"),
        (16, 16),
        "uint16",
        5.679131,
        5.679131,
        "mrc",
        "A,A",
    ),
    (
        "rosettasciio/test_STEM_image.dm3",
        ("y", "x"),
        (68, 68),
        "uint32",
        0.248538,
        0.248538,
        "dm3",
        "nm,nm",
    ),
    (
        "rosettasciio/test_loading_image_saved_with_DM.tif",
        ("y", "x"),
        (68, 68),
        "int32",
        168.674693,
        168.674693,
        "tiff-dm",
        "µm,µm",
    ),
    (
        "rosettasciio/test_loading_image_saved_with_imageJ.tif",
        ("y", "x"),
        (68, 68),
        "float32",
        168.674711,
        168.674711,
        "tiff-imagej",
        "micron,micron",
    ),
]


@pytest.mark.parametrize(
    ("name", "dims", "shape", "dtype", "y_nm", "x_nm", "fmt", "units"),
    REAL_FILES,
    ids=[entry[0] for entry in REAL_FILES],
)
def test_real_file_shape_dtype_and_pixel_size(
    formats_dir: Path,
    name: str,
    dims: tuple[str, ...],
    shape: tuple[int, ...],
    dtype: str,
    y_nm: float,
    x_nm: float,
    fmt: str,
    units: str,
) -> None:
    image = read_micrograph(formats_dir / name)
    assert image.dims == dims
    assert image.shape == shape
    assert image.dtype == np.dtype(dtype)
    assert image.attrs["pixel_size_nm_y"] == pytest.approx(y_nm, rel=1e-4)
    assert image.attrs["pixel_size_nm_x"] == pytest.approx(x_nm, rel=1e-4)
    assert image.attrs["format"] == fmt
    assert image.attrs["units_original"] == units
    # coords are pixel centres in nm
    assert float(image.x[0]) == pytest.approx(0.5 * x_nm, rel=1e-4)
    assert float(image.y[-1] - image.y[0]) == pytest.approx((shape[-2] - 1) * y_nm, rel=1e-4)
    if np.isclose(y_nm, x_nm):
        assert image.attrs["pixel_size_nm"] == pytest.approx(y_nm, rel=1e-4)
    else:
        assert "pixel_size_nm" not in image.attrs


def test_no_real_file_is_a_diffraction_pattern(formats_dir: Path) -> None:
    """ "Diffraction" in these names/modes is the STEM projector mode, not the data.

    ``STEM HAADF Diffraction Micro.emd`` is a real-space HAADF image (pixel unit m,
    87.37 nm/px) and the TIA STEM series report mode "STEM nP SA Zoom Diffraction"; only a
    TEM-mode diffraction acquisition (or reciprocal units) is refused. The refusals are
    tested on made-up files in test_io_errors.py.
    """
    from antema_scale.io.ncem_formats import _is_tem_diffraction_mode

    image = read_micrograph(formats_dir / "ncempy/STEM HAADF Diffraction Micro.emd")
    assert image.attrs["units_original"] == "m,m"
    series = read_micrograph(formats_dir / "rosettasciio/03_Scanning Preview_1.ser")
    assert "Diffraction" in series.attrs["instrument_mode"]
    assert not _is_tem_diffraction_mode(series.attrs["instrument_mode"])
    assert _is_tem_diffraction_mode(" TEM uP SA Zoom Diffraction")
    assert not _is_tem_diffraction_mode(" TEM uP SA Zoom Image")


def test_anisotropic_dm_keeps_both_axes_and_no_mean(formats_dir: Path) -> None:
    image = read_micrograph(formats_dir / "ncempy/dmTest_float32_nonSquare_diffPixelSize.dm4")
    assert image.attrs["pixel_size_nm_y"] == pytest.approx(0.2)
    assert image.attrs["pixel_size_nm_x"] == pytest.approx(1.0)
    assert "pixel_size_nm" not in image.attrs
    assert float(image.x[-1]) == pytest.approx(127.5)
    assert float(image.y[-1]) == pytest.approx(63.5 * 0.2)


def test_dm_stack_frame_axis_keeps_its_micrometre_step(formats_dir: Path) -> None:
    image = read_micrograph(formats_dir / "ncempy/dmTest_3D_int16_64,65,66.dm3")
    assert image.attrs["frame_axis_unit"] == "um"
    assert image.attrs["frame_axis_step"] == pytest.approx(4.0)
    assert list(image.frame.values) == list(range(66))


def test_provenance_attrs(formats_dir: Path) -> None:
    path = formats_dir / "particlespy/JEOL HAADF Image.dm4"
    image = read_micrograph(path)
    assert image.attrs["sha256"] == file_sha256(path)
    assert image.attrs["source"] == str(path.resolve())
    assert image.attrs["pixel_size_origin"] == "file"
    assert image.attrs["instrument_voltage_v"] == pytest.approx(80000.0)
    assert image.attrs["instrument_microscope"] == "JEOL COM"


def test_tia_series_instrument_metadata(formats_dir: Path) -> None:
    image = read_micrograph(formats_dir / "rosettasciio/03_Scanning Preview_1.ser")
    assert image.attrs["instrument_voltage_v"] == pytest.approx(200000.0)
    assert image.attrs["instrument_mode"].startswith("STEM")
    assert image.attrs["instrument_frame_time_s"] == pytest.approx(0.23593)


def test_user_pixel_size_overrides_file(formats_dir: Path) -> None:
    image = read_micrograph(formats_dir / "rosettasciio/test_STEM_image.dm3", pixel_size_nm=0.5)
    assert image.attrs["pixel_size_nm"] == 0.5
    assert image.attrs["pixel_size_origin"] == "user"
    anisotropic = read_micrograph(
        formats_dir / "rosettasciio/test_STEM_image.dm3", pixel_size_nm=(0.5, 0.25)
    )
    assert (anisotropic.attrs["pixel_size_nm_y"], anisotropic.attrs["pixel_size_nm_x"]) == (
        0.5,
        0.25,
    )


def test_haadf_film_hdf5(shared_data: Path) -> None:
    path = shared_data / "haadf-films" / "nanoparticles_01.h5"
    if not path.is_file():
        pytest.skip("haadf-films not present")
    image = read_micrograph(path)
    assert image.shape == (1024, 1024)
    assert image.dtype == np.uint32
    assert image.attrs["pixel_size_nm"] == pytest.approx(0.3289, rel=1e-3)
    assert image.attrs["format"] == "hdf5"
