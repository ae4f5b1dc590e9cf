"""ingest -> Zarr store -> open_store round trips, skips, errors, masks and the CLI."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import xarray as xr
from typer.testing import CliRunner

from antema_scale.cli import app
from antema_scale.io import (
    MaskNotWrittenError,
    collect_inputs,
    image_id_for,
    ingest,
    open_store,
    read_micrograph,
)


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=shape, dtype=np.uint16)


@pytest.fixture()
def mixed_folder(tmp_path: Path) -> Path:
    """Three image sizes, anisotropic pixels, a 4-frame movie, one corrupt file, a readme."""
    folder = tmp_path / "session"
    (folder / "sub").mkdir(parents=True)
    for name, shape, scale, unit in [
        ("small.h5", (40, 50), 0.25, "nm"),
        ("sub/large.h5", (300, 200), 2.0, "Å"),
        ("aniso.h5", (64, 32), [0.2, 1.0], "nm"),
    ]:
        with h5py.File(folder / name, "w") as h5:
            dataset = h5.create_dataset("data", data=_noise(shape, len(name)))
            dataset.attrs["scale"] = scale
            dataset.attrs["scale_unit"] = unit
    tifffile.imwrite(
        folder / "movie.tif",
        _noise((4, 48, 48), 7),
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"unit": "nm", "axes": "TYX", "finterval": 0.5},
    )
    (folder / "broken.dm3").write_bytes(b"\x00\x00\x00\x03" + bytes(range(256)) * 3)
    (folder / "README.txt").write_text("notes")
    return folder


def test_mixed_folder_round_trip(mixed_folder: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "store.zarr"
    report = ingest([mixed_folder], store_path, progress=False)

    assert len(report.ingested) == 4
    assert list(report.errors["error"]) == ["CorruptFileError"]
    assert "broken.dm3" in report.errors["message"].iloc[0]
    assert list(report.skipped["reason"]) == ["not a micrograph file type"]
    assert not report.ok

    store = open_store(store_path)
    assert len(store.index) == 4
    for source in ["small.h5", "sub/large.h5", "aniso.h5", "movie.tif"]:
        original = read_micrograph(mixed_folder / source)
        image_id = image_id_for(source, original.attrs["sha256"])
        assert image_id in store.image_ids
        back = store.read_image(image_id)
        xr.testing.assert_identical(back.drop_attrs(), original.drop_attrs())
        for key, value in original.attrs.items():
            assert back.attrs[key] == value, key
        row = store.index.set_index("image_id").loc[image_id]
        assert row["pixel_size_nm_y"] == original.attrs["pixel_size_nm_y"]
        assert row["pixel_size_nm_x"] == original.attrs["pixel_size_nm_x"]
        assert row["sha256"] == original.attrs["sha256"]

    rows = store.index.set_index("source")
    aniso = rows.loc[str((mixed_folder / "aniso.h5").resolve())]
    assert (aniso["pixel_size_nm_y"], aniso["pixel_size_nm_x"]) == (0.2, 1.0)
    movie = rows.loc[str((mixed_folder / "movie.tif").resolve())]
    assert (movie["n_frames"], movie["shape"]) == (4, "4x48x48")
    large = rows.loc[str((mixed_folder / "sub/large.h5").resolve())]
    assert large["pixel_size_nm_x"] == pytest.approx(0.2)


def test_reingest_skips_by_checksum(mixed_folder: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "store.zarr"
    ingest([mixed_folder], store_path, progress=False)
    copy = mixed_folder / "copy_of_small.h5"
    copy.write_bytes((mixed_folder / "small.h5").read_bytes())

    again = ingest([mixed_folder], store_path, progress=False)

    assert again.ingested.empty
    reasons = again.skipped.set_index("source")["reason"]
    assert reasons[str(copy.resolve())] == "already in store"
    assert (reasons == "already in store").sum() == 5
    assert len(again.errors) == 1  # the corrupt file is reported again, never stored
    assert len(open_store(store_path).index) == 4


def test_duplicate_inputs_in_one_run_are_written_once(tmp_path: Path) -> None:
    data = _noise((30, 30), 3)
    for name in ("a.h5", "b.h5"):
        with h5py.File(tmp_path / name, "w") as h5:
            h5.create_dataset("data", data=data).attrs.update(scale=1.0, scale_unit="nm")
    report = ingest([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "s.zarr", progress=False)
    assert len(report.ingested) == 1
    assert list(report.skipped["reason"]) == ["duplicate of another input"]


def test_glob_and_user_pixel_size(tmp_path: Path) -> None:
    from PIL import Image

    for index in range(3):
        Image.fromarray(_noise((20, 20), index).astype(np.uint8)).save(tmp_path / f"p{index}.png")
    report = ingest(
        [str(tmp_path / "p*.png")], tmp_path / "s.zarr", pixel_size_nm=0.5, progress=False
    )
    assert report.ok
    assert sorted(report.ingested["pixel_size_nm_x"]) == [0.5, 0.5, 0.5]
    assert set(report.ingested["pixel_size_origin"]) == {"user"}


def test_missing_inputs_become_error_rows(tmp_path: Path) -> None:
    report = ingest([tmp_path / "nope*.dm4"], tmp_path / "s.zarr", progress=False)
    assert list(report.errors["error"]) == ["FileNotFoundError"]
    assert open_store(tmp_path / "s.zarr").index.empty


def test_emi_and_its_ser_are_one_input(formats_dir: Path) -> None:
    candidates, _ignored = collect_inputs(
        [
            formats_dir / "rosettasciio/128x128-TEM_search.emi",
            formats_dir / "rosettasciio/128x128-TEM_search_1.ser",
        ]
    )
    assert [c.path.name for c in candidates] == ["128x128-TEM_search_1.ser"]


def test_masks_per_image_and_per_frame(mixed_folder: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "store.zarr"
    ingest([mixed_folder], store_path, progress=False)
    store = open_store(store_path)
    index = store.index.set_index("source")
    movie_id = index.loc[str((mixed_folder / "movie.tif").resolve()), "image_id"]
    small_id = index.loc[str((mixed_folder / "small.h5").resolve()), "image_id"]

    with pytest.raises(MaskNotWrittenError, match="frames \\[0\\]"):
        store.read_mask(small_id)
    small_mask = _noise((40, 50), 1) > 30000
    store.write_mask(small_id, small_mask)
    back = store.read_mask(small_id)
    assert back.dtype == bool
    np.testing.assert_array_equal(back.values, small_mask)
    assert back.attrs["pixel_size_nm"] == 0.25
    np.testing.assert_allclose(back["x"].values, store.read_image(small_id)["x"].values)

    frames = _noise((4, 48, 48), 2) > 30000
    for frame in (3, 0, 2):
        store.write_mask(movie_id, frames[frame], frame=frame)
    np.testing.assert_array_equal(store.mask_written(movie_id), [True, False, True, True])
    with pytest.raises(MaskNotWrittenError, match="frames \\[1\\]"):
        store.read_mask(movie_id)
    store.write_mask(movie_id, frames[1], frame=1)
    np.testing.assert_array_equal(store.read_mask(movie_id).values, frames)

    with pytest.raises(ValueError, match="shape"):
        store.write_mask(small_id, np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="out of range"):
        store.write_mask(movie_id, frames[0], frame=4)
    with pytest.raises(ValueError, match="bool"):
        store.write_mask(small_id, small_mask.astype(np.uint8))
    with pytest.raises(KeyError, match="no image"):
        store.write_mask("nothing-00000000", small_mask)


def test_index_is_rebuilt_when_the_cache_is_stale(mixed_folder: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "store.zarr"
    ingest([mixed_folder / "small.h5"], store_path, progress=False)
    cached = (store_path / "index.parquet").read_bytes()
    ingest([mixed_folder / "aniso.h5"], store_path, progress=False)
    (store_path / "index.parquet").write_bytes(cached)  # an index that misses one image
    assert len(open_store(store_path).index) == 2


def test_open_store_refuses_other_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Zarr store"):
        open_store(tmp_path)


def test_ingest_on_a_distributed_client(mixed_folder: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        report = ingest([mixed_folder], tmp_path / "s.zarr", client=client, progress=False)
    assert len(report.ingested) == 4
    assert list(report.errors["error"]) == ["CorruptFileError"]


def test_cli_ingest_exit_status_and_tables(mixed_folder: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "cli.zarr"
    runner = CliRunner()
    failed = runner.invoke(app, ["ingest", str(mixed_folder), "-o", str(store_path), "--quiet"])
    assert failed.exit_code == 1
    assert "CorruptFileError" in failed.output
    assert len(open_store(store_path).index) == 4

    clean = runner.invoke(
        app, ["ingest", str(mixed_folder / "small.h5"), "-o", str(store_path), "--quiet"]
    )
    assert clean.exit_code == 0, clean.output
    assert "skipped" in clean.output

    bad = runner.invoke(app, ["ingest", "x.png", "-o", str(store_path), "--pixel-size", "-1"])
    assert bad.exit_code == 2


def test_threaded_ingest_leaves_stdout_alone(formats_dir: Path, tmp_path: Path) -> None:
    """Readers run in many threads at once; none may swap sys.stdout or warning filters."""
    import sys
    import warnings

    stdout, filters = sys.stdout, list(warnings.filters)
    report = ingest([formats_dir], tmp_path / "s.zarr", scheduler="threads", progress=False)
    assert report.ok
    assert len(report.ingested) == 16
    assert sys.stdout is stdout
    assert warnings.filters == filters


def test_interrupted_write_is_invisible_and_redone(mixed_folder: Path, tmp_path: Path) -> None:
    import zarr

    store_path = tmp_path / "store.zarr"
    ingest([mixed_folder / "small.h5"], store_path, progress=False)
    image_id = open_store(store_path).image_ids[0]
    group = zarr.open_group(str(store_path), path=f"images/{image_id}", mode="r+")
    group.attrs["ingest_complete"] = False  # as if the worker died before finishing
    (store_path / "index.parquet").unlink()

    assert open_store(store_path).index.empty
    again = ingest([mixed_folder / "small.h5"], store_path, progress=False)
    assert list(again.ingested["image_id"]) == [image_id]
    assert open_store(store_path).image_ids == [image_id]
