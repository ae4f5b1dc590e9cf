"""Chunked (Dask + dask-image) path of the threshold baseline equals the in-memory path."""

from __future__ import annotations

import threading
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage
from skimage.filters import threshold_otsu

from antema_scale.segment import chunked
from antema_scale.segment import threshold as threshold_module
from antema_scale.segment.datasets import standin_micrograph
from antema_scale.segment.threshold import threshold_segment


def _micrograph(mode: str, shape: tuple[int, int] = (600, 700), seed: int = 3) -> np.ndarray:
    item = standin_micrograph(seed, shape, mode=mode, pixel_size_nm=0.5, noise=0.05)
    image = item.image.astype(np.float32)
    # Uneven illumination, so that the "local" background matters.
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return image + np.float32(0.3) * (rows / shape[0] + cols / shape[1]).astype(np.float32)


def _assert_same(reference: object, candidate: object) -> None:
    # Every step is exact per pixel (same SciPy kernel on the same neighbourhood, exact
    # percentiles and Otsu histogram), so mask and probability match bit for bit; only
    # mean-based quality numbers are summed in a different order.
    np.testing.assert_array_equal(candidate.mask, reference.mask)
    np.testing.assert_array_equal(candidate.probability, reference.probability)
    assert candidate.probability.dtype == np.float32 and candidate.mask.dtype == bool
    for key, value in reference.quality.items():
        if isinstance(value, bool):
            assert candidate.quality[key] is value, key
        else:
            assert candidate.quality[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize(
    ("mode", "method", "chunk_px"),
    [("hrtem", "otsu", 64), ("hrtem", "local", 97), ("haadf", "otsu", 97), ("haadf", "local", 64)],
)
def test_chunked_equals_in_memory_across_many_chunk_borders(
    mode: str, method: str, chunk_px: int
) -> None:
    image = _micrograph(mode)
    reference = threshold_segment(image, 0.5, method=method, chunked=False)
    candidate = threshold_segment(
        image, 0.5, method=method, chunked=True, chunk_px=chunk_px, scheduler="threads"
    )
    assert 0.05 < reference.mask.mean() < 0.5  # a real segmentation, not a trivial one
    _assert_same(reference, candidate)


@pytest.mark.parametrize(
    ("kwargs", "dtype"),
    [
        ({"sigma_px": 0.0}, np.uint16),  # no blur; integer input
        ({"sigma_px": 3.5, "polarity": "bright"}, np.float64),
        ({"method": "local", "block_size_nm": 300.0}, np.float32),  # kernel wider than the image
        ({"method": "local", "block_size_nm": 20.0, "polarity": "dark"}, np.float32),
    ],
)
def test_chunked_equals_in_memory_for_options_and_dtypes(
    kwargs: dict[str, object], dtype: type
) -> None:
    image = _micrograph("hrtem", (300, 250), seed=5)
    image = (image * 1000).astype(dtype) if dtype is np.uint16 else image.astype(dtype)
    reference = threshold_segment(image, 0.5, chunked=False, **kwargs)
    candidate = threshold_segment(image, 0.5, chunked=True, chunk_px=80, **kwargs)
    _assert_same(reference, candidate)


def test_dask_and_xarray_inputs_are_read_lazily_and_give_the_same_result() -> None:
    image = _micrograph("haadf", (320, 280))
    reference = threshold_segment(image, 0.5, method="local", chunked=False)
    lazy = da.from_array(image, chunks=(70, 90))
    # A Dask input takes the chunked path by default and keeps its own chunks.
    _assert_same(reference, threshold_segment(lazy, 0.5, method="local"))
    wrapped = xr.DataArray(lazy, dims=("y", "x"))
    _assert_same(reference, threshold_segment(wrapped, 0.5, method="local", scheduler="sync"))
    # chunked=False loads a Dask input and runs in memory.
    _assert_same(reference, threshold_segment(lazy, 0.5, method="local", chunked=False))


def test_lazily_read_store_image_and_movie_frame(tmp_path: Path) -> None:
    from antema_scale.io import create_store, write_image

    image = _micrograph("hrtem", (300, 340))
    movie = np.stack([_micrograph("hrtem", (300, 340), seed=s) for s in (7, 8)])
    store_path = tmp_path / "store.zarr"
    store = create_store(store_path)
    attrs = {"pixel_size_nm_y": 0.5, "pixel_size_nm_x": 0.5, "pixel_size_nm": 0.5}
    write_image(store_path, xr.DataArray(image, dims=("y", "x"), attrs=attrs), "img")
    write_image(store_path, xr.DataArray(movie, dims=("frame", "y", "x"), attrs=attrs), "movie")
    lazy_image = store.read_image("img", lazy=True)
    assert isinstance(lazy_image.data, da.Array)
    _assert_same(
        threshold_segment(image, 0.5, chunked=False),
        threshold_segment(lazy_image, 0.5, chunk_px=128),
    )
    frame = store.read_image("movie", lazy=True).isel(frame=1)
    _assert_same(
        threshold_segment(movie[1], 0.5, chunked=False),
        threshold_segment(frame, 0.5, chunk_px=100),
    )


def test_large_images_take_the_chunked_path_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    original = threshold_module._threshold_chunked

    def spy(image: object, *args: object, **kwargs: object) -> object:
        calls.append(tuple(np.shape(image)))
        return original(image, *args, **kwargs)

    monkeypatch.setattr(threshold_module, "_threshold_chunked", spy)
    small = _micrograph("hrtem", (120, 100))
    threshold_segment(small, 0.5)
    assert calls == []
    monkeypatch.setattr(chunked, "CHUNKED_MIN_PIXELS", small.size)
    threshold_segment(small, 0.5)
    assert calls == [(120, 100)]


def test_flat_and_non_finite_images_on_the_chunked_path() -> None:
    flat = threshold_segment(np.full((64, 48), 3.0), 0.5, chunked=True, chunk_px=16)
    assert not flat.mask.any() and flat.quality["out_of_distribution"] is True
    bad = _micrograph("hrtem", (64, 64))
    bad[10, 20] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        threshold_segment(da.from_array(bad, chunks=16), 0.5)
    bad[10, 20] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        threshold_segment(bad, 0.5, chunked=True, chunk_px=16)
    with pytest.raises(ValueError, match="2-D"):
        threshold_segment(da.zeros((2, 8, 8), chunks=4), 0.5)


def test_exact_percentiles_and_order_statistics_match_numpy() -> None:
    rng = np.random.default_rng(11)
    cases = [
        rng.normal(size=(257, 131)).astype(np.float32),
        np.round(rng.normal(size=(90, 70)) * 2).astype(np.float32),  # many ties
        (rng.normal(size=(50, 61)) * 1e-4 + 7).astype(np.float32),  # narrow range
        np.array([[-0.0, 0.0, 5.0, -3.0, 5.0]], dtype=np.float32),
        np.full((4, 4), -2.5, dtype=np.float32),
        np.array([[1.0]], dtype=np.float32),
    ]
    for values in cases:
        lazy = chunked.as_dask_image(values, chunk_px=45)
        percents = (0, 1, 37.5, 50, 99, 100)
        expected = np.percentile(values, percents)
        np.testing.assert_array_equal(
            chunked.exact_percentiles(lazy, percents, scheduler="sync"), expected
        )
        ranks = [0, values.size // 3, values.size - 1]
        got = chunked.order_statistics(lazy, ranks, scheduler="sync")
        np.testing.assert_array_equal(got, np.sort(values, axis=None)[ranks])


def test_otsu_threshold_from_chunk_histograms_matches_skimage() -> None:
    rng = np.random.default_rng(12)
    for values in (
        _micrograph("haadf", (150, 170)),
        np.concatenate([rng.normal(0, 1, 5000), rng.normal(6, 2, 3000)]).astype(np.float32),
    ):
        lazy = chunked.as_dask_image(values, chunk_px=33)
        got = chunked.otsu_threshold(lazy, values.min(), values.max(), scheduler="sync")
        assert got == float(threshold_otsu(values))


@pytest.mark.parametrize("sigma", [2.0, 30.0, 400.0])
def test_dask_image_filters_equal_scipy(sigma: float) -> None:
    image = np.random.default_rng(13).normal(size=(230, 190)).astype(np.float32)
    expected = ndimage.gaussian_filter(image, sigma, mode="reflect")
    if sigma < 10:
        blurred = chunked.gaussian_blur(chunked.as_dask_image(image, 40), sigma)
        np.testing.assert_array_equal(blurred.compute(scheduler="sync"), expected)
    background = chunked.gaussian_background(image, sigma, strip_px=48, scheduler="threads")
    np.testing.assert_array_equal(background, expected)


def test_numpy_input_is_read_through_views_not_copied() -> None:
    image = np.arange(64 * 80, dtype=np.float32).reshape(64, 80)
    lazy = chunked.as_dask_image(image, chunk_px=32)
    assert lazy.numblocks == (2, 3)

    def check(index: tuple[slice, ...], block: np.ndarray) -> bool:
        return np.shares_memory(block, image) and np.array_equal(block, image[index])

    assert chunked.per_block(check, lazy, scheduler="threads") == [True] * 6


def test_scheduler_is_synchronous_inside_threads_and_dask_workers() -> None:
    assert chunked.default_scheduler() == "threads"
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(chunked.default_scheduler()))
    thread.start()
    thread.join()
    assert seen == ["synchronous"]


def test_inside_a_distributed_worker_and_never_on_the_default_client() -> None:
    from distributed import Client, LocalCluster, get_task_stream

    image = _micrograph("hrtem", (200, 180))
    reference = threshold_segment(image, 0.5, chunked=False)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        assert client.submit(chunked.default_scheduler).result() == "synchronous"
        remote = client.submit(threshold_segment, image, 0.5, chunked=True, chunk_px=64)
        _assert_same(reference, remote.result())
        # From the client's process, the chunked path uses local threads, not the
        # registered default client (that would ship the image through the scheduler).
        with get_task_stream(client) as stream:
            local = threshold_segment(image, 0.5, chunked=True, chunk_px=64)
        assert stream.data == []
        _assert_same(reference, local)


@pytest.mark.slow
def test_default_chunk_size_on_an_image_above_the_size_threshold() -> None:
    side = int(np.ceil(np.sqrt(chunked.CHUNKED_MIN_PIXELS)))
    rng = np.random.default_rng(14)
    tile = _micrograph("haadf", (512, 512), seed=9)
    image = np.tile(tile, (side // 512 + 1, side // 512 + 1))[:side, : side + 100]
    image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    candidate = threshold_segment(image, 0.5)  # auto: chunked, DEFAULT_CHUNK_PX chunks
    _assert_same(threshold_segment(image, 0.5, chunked=False), candidate)
