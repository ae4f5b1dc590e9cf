"""The whole pipeline on small synthetic micrographs with an in-process Dask cluster.

Images are written as calibrated HDF5 files (dataset ``data``, attrs ``scale`` and
``scale_unit``, as the HAADF films in ../shared/data), segmented with the threshold
baseline so that the tests need no trained model.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

from antema_scale.io import open_store, read_micrograph
from antema_scale.particles import AnalysisOptions, analyze_mask
from antema_scale.pipeline import ImageFailedError, SegmentationSettings, analyze, run_analysis
from antema_scale.pipeline.results import PER_IMAGE_DIR
from antema_scale.segment import threshold_segment
from antema_scale.synth import SynthConfig, generate_micrograph

THRESHOLD = SegmentationSettings(segmenter="threshold")
N_GOOD = 5


def write_h5(path: Path, image: np.ndarray, scale: float, unit: str = "nm") -> Path:
    """A calibrated HDF5 micrograph as the readers expect it."""
    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("data", data=image)
        data.attrs["scale"] = scale
        data.attrs["scale_unit"] = unit
    return path


def synthetic_folder(folder: Path, n: int, *, size: int = 160, first_seed: int = 0) -> list[Path]:
    """``n`` small HAADF micrographs at 0.3 nm/px."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + n):
        config = SynthConfig(mode="haadf", image_size=size, pixel_size_nm=0.3, overlap="low")
        micrograph = generate_micrograph(config, seed=seed)
        paths.append(
            write_h5(
                folder / f"particles_{seed:02d}.h5", micrograph.image, micrograph.pixel_size_nm
            )
        )
    return paths


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as active,
    ):
        yield active


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    synthetic_folder(folder, N_GOOD)
    return folder


@pytest.fixture(scope="module")
def reference(good_folder: Path, client: Client, tmp_path_factory: pytest.TempPathFactory):
    """One uninterrupted run over the good folder."""
    return run_analysis(
        good_folder, tmp_path_factory.mktemp("reference"), segmentation=THRESHOLD, client=client
    )


def direct_particles(paths: list[Path]) -> pd.DataFrame:
    """The per-image functions called one after another, without Dask."""
    tables = []
    for path in paths:
        image = read_micrograph(path)
        size = float(image.attrs["pixel_size_nm"])
        mask = threshold_segment(np.asarray(image.values), size).mask
        image_id = f"{path.stem}-{image.attrs['sha256'][:8]}"
        tables.append(analyze_mask(mask, size, image_id=image_id).particles)
    return (
        pd.concat(tables, ignore_index=True)
        .sort_values(["image_id", "particle_id"])
        .reset_index(drop=True)
    )


def test_pipeline_results_equal_direct_per_image_calls(good_folder: Path, reference) -> None:
    assert reference.ok
    expected = direct_particles(sorted(good_folder.glob("*.h5")))
    assert len(expected) > 20
    pd.testing.assert_frame_equal(reference.particles, expected, check_dtype=False)
    assert len(reference.images) == N_GOOD
    counts = reference.particles.groupby("image_id").size()
    assert (
        reference.images.set_index("image_id")["n_particles"]
        == counts.reindex(reference.images.image_id).fillna(0)
    ).all()


def test_masks_are_written_back_into_the_store(good_folder: Path, reference) -> None:
    store = open_store(reference.output_dir / "store.zarr")
    for image_id in reference.images.image_id:
        image = store.read_image(image_id)
        mask = store.read_mask(image_id).values
        expected = threshold_segment(
            np.asarray(image.values), float(image.attrs["pixel_size_nm"])
        ).mask
        np.testing.assert_array_equal(mask, expected)


def test_run_writes_tables_and_manifest(reference) -> None:
    out = reference.output_dir
    for name in (
        "particles.parquet",
        "images.parquet",
        "errors.parquet",
        "errors.csv",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    pd.testing.assert_frame_equal(pd.read_parquet(out / "particles.parquet"), reference.particles)
    assert len(list((out / PER_IMAGE_DIR).glob("*.parquet"))) == N_GOOD
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == {
        "segmenter": "threshold",
        "path": "",
        "sha256": "threshold-segmenter",
    }
    assert {entry["sha256"] for entry in manifest["inputs"]} == set(reference.images.sha256)
    assert manifest["parameters"]["analysis"]["separation"] == AnalysisOptions().separation
    assert manifest["counts"]["analysed"] == N_GOOD
    assert manifest["software"]["dask"] != "not installed"
    assert manifest["hardware"]["cpu_count"] >= 1
    assert manifest["cluster"]["workers"] == 2


def test_rerun_reuses_every_finished_image(good_folder: Path, reference, client: Client) -> None:
    again = run_analysis(good_folder, reference.output_dir, segmentation=THRESHOLD, client=client)
    assert again.analysed == []
    assert sorted(again.reused) == sorted(reference.images.image_id)
    pd.testing.assert_frame_equal(again.particles, reference.particles)


def test_changed_parameters_recompute(
    good_folder: Path, reference, client: Client, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference.output_dir, out)
    table = analyze(good_folder, out, segmenter="threshold", separation="watershed", client=client)
    assert len(table) > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {**manifest["counts"], "analysed": N_GOOD, "reused": 0}
    assert manifest["parameters"]["analysis"]["separation"] == "watershed"


def wait_until_idle(client: Client, timeout_s: float = 60.0) -> None:
    """Wait until no task is processing on any worker, cancelled ones included.

    A task cancelled while it runs leaves the scheduler's ``processing`` at once but its
    thread finishes (and writes its result file) later: count the workers' executing
    tasks too.
    """

    def busy() -> bool:
        executing = client.run(lambda dask_worker: len(dask_worker.state.executing))
        return any(client.processing().values()) or any(executing.values())

    deadline = time.monotonic() + timeout_s
    while busy() and time.monotonic() < deadline:
        time.sleep(0.1)


class StopAfter(Exception):
    """Raised from the progress callback to interrupt a run."""


def test_interrupted_run_resumes_only_unfinished_images(
    good_folder: Path, reference, client: Client, tmp_path: Path
) -> None:
    seen: list[str] = []

    def interrupt_after_two(outcome) -> None:
        seen.append(outcome.image_id)
        if len(seen) == 2:
            raise StopAfter

    out = tmp_path / "run"
    with pytest.raises(StopAfter):
        run_analysis(
            good_folder,
            out,
            segmentation=THRESHOLD,
            client=client,
            progress=interrupt_after_two,
            max_in_flight=2,
        )
    wait_until_idle(client)
    finished_before = {p.stem for p in (out / PER_IMAGE_DIR).glob("*.parquet")}
    assert 2 <= len(finished_before) < N_GOOD
    resumed = run_analysis(good_folder, out, segmentation=THRESHOLD, client=client)
    assert set(resumed.reused) == finished_before
    assert set(resumed.analysed) == set(reference.images.image_id) - finished_before
    pd.testing.assert_frame_equal(resumed.particles, reference.particles)


def test_store_input_is_analysed_in_place(reference, client: Client, tmp_path: Path) -> None:
    result = run_analysis(
        reference.output_dir / "store.zarr",
        tmp_path / "from-store",
        segmentation=THRESHOLD,
        client=client,
    )
    assert not (tmp_path / "from-store" / "store.zarr").exists()
    pd.testing.assert_frame_equal(result.particles, reference.particles)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good images among a corrupt file, a diffraction pattern, a spectrum and a note."""
    folder = tmp_path_factory.mktemp("mixed")
    synthetic_folder(folder, 3, first_seed=10)
    good = (folder / "particles_10.h5").read_bytes()
    (folder / "truncated.h5").write_bytes(good[: len(good) // 3])
    write_h5(
        folder / "diffraction.h5",
        np.random.default_rng(0).random((64, 64)).astype(np.float32),
        0.05,
        "1/nm",
    )
    write_h5(
        folder / "spectrum.h5", np.random.default_rng(1).random(2048).astype(np.float32), 0.01, "nm"
    )
    (folder / "notes.txt").write_text("sample from batch 7")
    return folder


def test_bad_files_become_error_rows_and_good_ones_are_analysed(
    mixed_folder: Path, client: Client, tmp_path: Path
) -> None:
    result = run_analysis(mixed_folder, tmp_path / "run", segmentation=THRESHOLD, client=client)
    assert not result.ok
    assert len(result.images) == 3
    assert set(result.particles.image_id) == set(result.images.image_id)
    errors = result.errors.set_index(result.errors.source.map(lambda s: Path(s).name))
    assert errors.loc["truncated.h5", "error_type"] == "CorruptFileError"
    assert errors.loc["diffraction.h5", "error_type"] == "ReciprocalSpaceError"
    assert errors.loc["spectrum.h5", "error_type"] == "NotAnImageError"
    assert "notes.txt" not in errors.index
    for name in ("truncated.h5", "diffraction.h5", "spectrum.h5"):
        assert name in errors.loc[name, "message"]
    on_disk = pd.read_csv(tmp_path / "run" / "errors.csv")
    assert sorted(on_disk.error_type) == sorted(result.errors.error_type)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any(
        entry["status"].startswith("skipped") and entry["source"].endswith("notes.txt")
        for entry in manifest["inputs"]
    )


def test_an_image_far_too_coarse_for_the_network_is_an_error_row(
    client: Client, tmp_path: Path
) -> None:
    """87 nm/px (as a real EMD file in ../shared/data/formats): the network would have to
    enlarge it 175x; it is refused with a clear message instead of exhausting the workers."""
    folder = tmp_path / "in"
    synthetic_folder(folder, 1, size=128)
    write_h5(
        folder / "overview.h5",
        np.random.default_rng(2).random((128, 128)).astype(np.float32),
        87.37,
    )
    settings = SegmentationSettings(device="cpu")
    result = run_analysis(folder, tmp_path / "run", segmentation=settings, client=client)
    assert list(result.images.image_id.str.startswith("particles_00")) == [True]
    (error,) = result.errors.itertuples()
    assert Path(error.source).name == "overview.h5"
    assert (error.stage, error.error_type) == ("segment", "ImageInputError")
    assert error.message.startswith("pixel size 87.37 nm/px is 175x coarser than the model's")
    assert "--segmenter threshold" in error.message
    threshold = run_analysis(folder, tmp_path / "threshold", segmentation=THRESHOLD, client=client)
    assert threshold.ok and len(threshold.images) == 2


def test_fail_fast_raises_with_the_first_error(
    mixed_folder: Path, client: Client, tmp_path: Path
) -> None:
    with pytest.raises(ImageFailedError, match="analysis stopped at the first failure"):
        analyze(
            mixed_folder, tmp_path / "run", segmenter="threshold", fail_fast=True, client=client
        )
    assert (tmp_path / "run" / "errors.csv").is_file()


def test_unknown_option_names_the_valid_ones(good_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown option 'separaton'.*separation"):
        analyze(good_folder, tmp_path, separaton="none")


def test_groups_of_images_segmented_together_give_the_same_table(
    good_folder: Path, reference, client: Client, tmp_path: Path
) -> None:
    grouped = SegmentationSettings(segmenter="threshold", images_per_task=3)
    result = run_analysis(good_folder, tmp_path / "run", segmentation=grouped, client=client)
    assert result.ok
    pd.testing.assert_frame_equal(result.particles, reference.particles)


#: Calls of :func:`flaky_measure` (module level: tasks run in this process and find it by reference).
FLAKY_CALLS: list[str] = []


def flaky_measure(context, work, segmentation):  # noqa: ANN001, ANN201 - same signature as measure_image
    """``measure_image`` that loses its connection on the first call per image."""
    from antema_scale.pipeline.tasks import measure_image

    FLAKY_CALLS.append(work.image_id)
    if FLAKY_CALLS.count(work.image_id) == 1:
        raise ConnectionResetError(f"simulated lost connection for {work.image_id}")
    return measure_image(context, work, segmentation)


def test_transient_task_failures_are_retried(
    good_folder: Path, reference, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import antema_scale.pipeline.graph as graph

    FLAKY_CALLS.clear()
    monkeypatch.setattr(graph, "measure_image", flaky_measure)
    result = run_analysis(
        good_folder, tmp_path / "run", segmentation=THRESHOLD, client=client, retries=1
    )
    assert result.ok, result.errors
    assert sorted(FLAKY_CALLS) == sorted(2 * list(reference.images.image_id))
    pd.testing.assert_frame_equal(result.particles, reference.particles)


def test_failures_after_all_retries_become_error_rows(
    good_folder: Path, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import antema_scale.pipeline.graph as graph

    def always_failing(context, work, segmentation):  # noqa: ANN001, ANN202 - same signature as measure_image
        raise TimeoutError(f"disk of {work.image_id} timed out")

    monkeypatch.setattr(graph, "measure_image", always_failing)
    result = run_analysis(
        good_folder, tmp_path / "run", segmentation=THRESHOLD, client=client, retries=1
    )
    assert not result.ok
    assert len(result.errors) == N_GOOD
    assert set(result.errors.error_type) == {"TimeoutError"}
    assert set(result.errors.stage) == {"task"}
    assert result.errors.message.str.contains("timed out").all()


@pytest.fixture(scope="module")
def movie_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 5-frame movie (frames of different synthetic scenes) as a 3-D HDF5 dataset."""
    folder = tmp_path_factory.mktemp("movie")
    config = SynthConfig(mode="haadf", image_size=128, pixel_size_nm=0.3, overlap="low")
    frames = np.stack([generate_micrograph(config, seed=seed).image for seed in range(70, 75)])
    write_h5(folder / "movie.h5", frames, 0.3)
    return folder


def test_movies_are_analysed_per_frame_and_chunks_give_the_same_table(
    movie_folder: Path, client: Client, tmp_path: Path
) -> None:
    whole = run_analysis(movie_folder, tmp_path / "whole", segmentation=THRESHOLD, client=client)
    chunked_settings = SegmentationSettings(segmenter="threshold", frames_per_task=2)
    chunked = run_analysis(
        movie_folder, tmp_path / "chunked", segmentation=chunked_settings, client=client
    )
    assert whole.ok and chunked.ok
    assert len(chunked.analysed) == 3  # frames [0, 2), [2, 4), [4, 5)
    pd.testing.assert_frame_equal(chunked.particles, whole.particles)
    assert sorted(whole.particles.frame.unique()) == [0, 1, 2, 3, 4]
    assert whole.particles.time_s.isna().all()
    for result in (whole, chunked):
        assert len(result.images) == 1
        row = result.images.iloc[0]
        assert row.frames == 5 and row.n_particles == len(whole.particles)
    image = read_micrograph(movie_folder / "movie.h5")
    store = open_store(tmp_path / "chunked" / "store.zarr")
    masks = store.read_mask(store.image_ids[0]).values
    for index in range(5):
        expected = threshold_segment(np.asarray(image.values[index]), 0.3).mask
        np.testing.assert_array_equal(masks[index], expected)
    rerun = run_analysis(
        movie_folder, tmp_path / "chunked", segmentation=chunked_settings, client=client
    )
    assert rerun.analysed == [] and len(rerun.reused) == 3


def test_the_frames_of_a_movie_share_one_scale_decision(client: Client, tmp_path: Path) -> None:
    """Frames of small (2 nm) and large (12 nm) particles alternate; the sample frames 0, 2, 4
    are mostly small, so every frame, in every chunk, gets the second pass on the 2x grid."""
    from antema_scale.segment import load_model, predict

    def scene(diameter_nm: float, seed: int) -> np.ndarray:
        config = SynthConfig(
            mode="haadf",
            image_size=128,
            pixel_size_nm=0.3,
            overlap="low",
            diameter_mean_nm=diameter_nm,
            diameter_spread=0.1,
            area_fraction=0.15,
        )
        return generate_micrograph(config, seed=seed).image

    frames = [scene(2.0, 80), scene(12.0, 81), scene(2.0, 82), scene(12.0, 83), scene(12.0, 84)]
    folder = tmp_path / "movie"
    folder.mkdir()
    write_h5(folder / "movie.h5", np.stack(frames), 0.3)
    model = load_model(device="cpu")
    on_their_own = [p.quality["refine_zoom"] for p in predict(model, frames, [0.3] * 5)]
    assert on_their_own[0] > 1.0 and on_their_own[1] == 1.0  # the frames would disagree
    shared = predict(model, frames, [0.3] * 5, refine_zooms=[on_their_own[0]] * 5)
    for frames_per_task in (16, 2):
        settings = SegmentationSettings(device="cpu", frames_per_task=frames_per_task)
        result = run_analysis(
            folder, tmp_path / f"run{frames_per_task}", segmentation=settings, client=client
        )
        assert result.ok
        assert result.images.iloc[0].quality_refine_zoom == pytest.approx(on_their_own[0])
        store = open_store(tmp_path / f"run{frames_per_task}" / "store.zarr")
        masks = store.read_mask(store.image_ids[0]).values
        for index in range(5):
            np.testing.assert_array_equal(masks[index], shared[index].mask)


def test_rich_progress_bar_counts_images_from_the_distributed_scheduler(
    good_folder: Path, client: Client, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from antema_scale.pipeline.analyze import rich_progress

    with rich_progress(N_GOOD) as advance:
        result = run_analysis(
            good_folder, tmp_path / "run", segmentation=THRESHOLD, client=client, progress=advance
        )
    assert result.ok
    assert f"{N_GOOD}/{N_GOOD} 0 failed" in capsys.readouterr().out


def test_new_files_are_segmented_while_others_are_still_being_ingested(
    good_folder: Path, reference, tmp_path: Path
) -> None:
    """Ingest is part of the graph: the first image is segmented before the last file is read."""
    from distributed import get_task_stream

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as single,
        get_task_stream(single) as stream,
    ):
        result = run_analysis(
            good_folder, tmp_path / "run", segmentation=THRESHOLD, client=single, max_in_flight=2
        )
    assert result.ok and sorted(result.analysed) == sorted(reference.analysed)
    pd.testing.assert_frame_equal(result.particles, reference.particles)
    spans: dict[str, list[tuple[float, float]]] = {"ingest": [], "segment": []}
    for record in stream.data:
        kind = str(record["key"]).split("-")[1]
        if kind in spans:
            compute = next(s for s in record["startstops"] if s["action"] == "compute")
            spans[kind].append((compute["start"], compute["stop"]))
    assert len(spans["ingest"]) == N_GOOD and len(spans["segment"]) == N_GOOD
    first_segment_start = min(start for start, _ in spans["segment"])
    last_ingest_stop = max(stop for _, stop in spans["ingest"])
    assert first_segment_start < last_ingest_stop
    assert open_store(tmp_path / "run" / "store.zarr").image_ids == sorted(result.images.image_id)
