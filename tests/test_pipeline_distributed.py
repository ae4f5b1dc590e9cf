"""The pipeline on worker *processes*: a real ``dask scheduler`` with ``dask worker``
processes on loopback, a worker killed mid-run, and the network loaded once per worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from test_pipeline_end_to_end import THRESHOLD, direct_particles, synthetic_folder
from typer.testing import CliRunner

from antema_scale.cli import app
from antema_scale.pipeline import SegmentationSettings, run_analysis
from antema_scale.pipeline.model_plugin import model_load_counts

THRESHOLD_CACHE_KEY = "threshold:threshold-segmenter:auto"


def _wait_for_file(path: Path, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written within {timeout_s} s")
        time.sleep(0.2)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def loopback_cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``dask scheduler`` and ``dask worker --nworkers 2`` as subprocesses; yields the
    scheduler address and its scheduler file."""
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    dask = [sys.executable, "-m", "dask"]
    processes: list[subprocess.Popen] = []
    try:
        processes.append(
            subprocess.Popen(
                [
                    *dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                stdout=(logs / "scheduler.log").open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        _wait_for_file(scheduler_file, processes[0])
        processes.append(
            subprocess.Popen(
                [
                    *dask,
                    "worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--memory-limit",
                    "2GiB",
                ],
                stdout=(logs / "workers.log").open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, scheduler_file
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.mark.slow
def test_analyze_through_an_external_scheduler_with_two_worker_processes(
    loopback_cluster: tuple[str, Path], tmp_path: Path
) -> None:
    address, scheduler_file = loopback_cluster
    paths = synthetic_folder(tmp_path / "images", 4, size=128)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "images"),
            "-o",
            str(out),
            "--scheduler",
            address,
            "--segmenter",
            "threshold",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert address in result.output
    particles = pd.read_parquet(out / "particles.parquet")
    pd.testing.assert_frame_equal(particles, direct_particles(sorted(paths)), check_dtype=False)
    with Client(address) as client:
        counts = client.run(model_load_counts)
    assert len(counts) == 2
    assert all(count == {THRESHOLD_CACHE_KEY: 1} for count in counts.values())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cluster"]["scheduler"] == address
    assert manifest["cluster"]["workers"] == 2
    again = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "images"),
            "-o",
            str(tmp_path / "run2"),
            "--scheduler-file",
            str(scheduler_file),
            "--segmenter",
            "threshold",
            "--quiet",
        ],
    )
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "run2" / "particles.parquet"), particles
    )


@pytest.fixture(scope="module")
def process_client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.mark.slow
def test_killed_worker_loses_only_in_flight_images(process_client: Client, tmp_path: Path) -> None:
    paths = synthetic_folder(tmp_path / "images", 10, size=160, first_seed=20)
    pids = process_client.run(os.getpid)
    killed: list[int] = []

    def kill_a_busy_worker(outcome: object) -> None:
        if killed:
            return
        busy = [address for address, keys in process_client.processing().items() if keys]
        if busy:
            killed.append(pids[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)

    result = run_analysis(
        tmp_path / "images",
        tmp_path / "run",
        segmentation=THRESHOLD,
        client=process_client,
        progress=kill_a_busy_worker,
        max_in_flight=4,
    )
    assert killed, "no worker was busy when the first image finished"
    assert result.ok, result.errors
    assert result.images.image_id.is_unique and len(result.images) == 10
    pd.testing.assert_frame_equal(
        result.particles, direct_particles(sorted(paths)), check_dtype=False
    )


def _tiny_model(path: Path) -> Path:
    import torch

    from antema_scale.segment import NetworkConfig, Preprocessing, build_network, save_model

    torch.manual_seed(0)
    network = build_network(NetworkConfig(base_width=8, aspp_rates=(2, 4)))
    save_model(path, network, Preprocessing(pixel_size_range_nm=(0.25, 0.5)))
    return path


@pytest.mark.slow
def test_network_is_loaded_once_per_worker_and_matches_direct_prediction(
    process_client: Client, tmp_path: Path
) -> None:
    from antema_scale.io import read_micrograph
    from antema_scale.segment import load_model, predict

    model_path = _tiny_model(tmp_path / "tiny.pt")
    paths = synthetic_folder(tmp_path / "images", 6, size=96, first_seed=40)
    settings = SegmentationSettings(
        segmenter="model", model_path=str(model_path), device="cpu", batch_size=2
    )
    result = run_analysis(
        tmp_path / "images", tmp_path / "run", segmentation=settings, client=process_client
    )
    assert result.ok, result.errors
    counts = process_client.run(model_load_counts)
    model_keys = [
        key for per_worker in counts.values() for key in per_worker if key.startswith("model:")
    ]
    assert len(model_keys) == 2  # one per worker process, not one per task (6 images)
    assert all(
        per_worker[key] == 1
        for per_worker in counts.values()
        for key in per_worker
        if key.startswith("model:")
    )
    model = load_model(model_path, device="cpu")
    store_masks = {}
    from antema_scale.io import open_store

    store = open_store(tmp_path / "run" / "store.zarr")
    for image_id in result.images.image_id:
        store_masks[image_id] = store.read_mask(image_id).values
    for path in paths:
        image = read_micrograph(path)
        expected = predict(
            model, [np.asarray(image.values)], [float(image.attrs["pixel_size_nm"])], batch_size=2
        )[0]
        image_id = f"{path.stem}-{image.attrs['sha256'][:8]}"
        np.testing.assert_array_equal(store_masks[image_id], expected.mask)
    assert {"quality_mean_margin", "quality_out_of_distribution"} <= set(result.images.columns)
