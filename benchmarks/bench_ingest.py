"""Ingest throughput (MB/s of source files) against a plain copy of the same files.

Measured side by side in one run, on the same files, with the page cache warmed first so
that both read from memory: ``shutil.copy`` of every file into a fresh folder, then
``antema_scale.io.ingest`` into a fresh Zarr store with Dask's local scheduler
(synchronous, threads) and optionally on a ``distributed`` LocalCluster. Each variant runs
``--repeat`` times; the table shows the median and the ratio to the copy.

Two file sets are measured: the real files (default ``../shared/data/haadf-films`` and
``../shared/data/formats``: 21 files, 24.7 MB, mostly small, so per-file overhead
dominates) and ``--synthetic N`` large micrographs (4096 x 4096 uint16 HDF5, 33.6 MB each,
Poisson counts on a smooth background, generated into a temporary folder before timing),
where bandwidth dominates.

Usage::

    python benchmarks/bench_ingest.py [INPUTS ...] [--repeat 3] [--workers 2]
        [--synthetic 4] [--json benchmarks/results/bench_ingest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from antema_scale.io import collect_inputs, file_sha256, ingest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _files(inputs: list[str]) -> list[Path]:
    candidates, _ignored = collect_inputs(inputs)
    return [candidate.path for candidate in candidates if candidate.problem is None]


def _write_synthetic(folder: Path, count: int, side: int = 4096) -> list[Path]:
    """``count`` HDF5 micrographs of ``side``² uint16 Poisson counts, 0.2 nm pixels."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    paths = []
    for index in range(count):
        background = 200 + 100 * np.sin(6.0 * xx + index) * np.cos(4.0 * yy)
        counts = rng.poisson(background).astype(np.uint16)
        path = folder / f"synthetic_{index}.h5"
        with h5py.File(path, "w") as h5:
            dataset = h5.create_dataset("data", data=counts)
            dataset.attrs.update(scale=0.2, scale_unit="nm")
        paths.append(path)
    return paths


def _time_copy(files: list[Path], scratch: Path) -> float:
    target = Path(tempfile.mkdtemp(dir=scratch))
    started = time.perf_counter()
    for index, path in enumerate(files):
        shutil.copy(path, target / f"{index}_{path.name}")
    return time.perf_counter() - started


def _time_ingest(files: list[Path], scratch: Path, **options: object) -> float:
    store = Path(tempfile.mkdtemp(dir=scratch)) / "store.zarr"
    started = time.perf_counter()
    report = ingest(files, store, progress=False, **options)
    elapsed = time.perf_counter() - started
    if not report.ok or len(report.ingested) != len(files):
        raise RuntimeError(f"ingest failed: {report.errors.to_dict('records')}")
    return elapsed


def _measure(
    label: str, files: list[Path], repeat: int, client: object, workers: int
) -> dict[str, object]:
    """Time every variant ``repeat`` times on ``files``; print and return the table."""
    total_bytes = sum(path.stat().st_size for path in files)
    for path in files:  # warm the page cache so every variant reads from memory
        file_sha256(path)
    variants: dict[str, Callable[[Path], float]] = {
        "shutil.copy": lambda scratch: _time_copy(files, scratch),
        "ingest synchronous": lambda scratch: _time_ingest(files, scratch, scheduler="synchronous"),
        "ingest threads": lambda scratch: _time_ingest(files, scratch, scheduler="threads"),
    }
    if client is not None:
        variants[f"ingest LocalCluster({workers} procs)"] = lambda scratch: _time_ingest(
            files, scratch, client=client
        )
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        for _ in range(repeat):  # interleave variants so load changes hit all alike
            for name, run in variants.items():
                seconds[name].append(run(scratch))
    megabytes = total_bytes / 1e6
    copy_speed = megabytes / statistics.median(seconds["shutil.copy"])
    print(f"\n{label}: {len(files)} files, {megabytes:.1f} MB, median of {repeat} runs")
    print(f"{'variant':<36}{'median s':>10}{'MB/s':>10}{'vs copy':>10}")
    rows = []
    for name, values in seconds.items():
        median = statistics.median(values)
        speed = megabytes / median
        rows.append(
            {
                "variant": name,
                "median_s": median,
                "mb_per_s": speed,
                "ratio_to_copy": speed / copy_speed,
                "runs_s": values,
            }
        )
        print(f"{name:<36}{median:>10.3f}{speed:>10.1f}{speed / copy_speed:>10.3f}")
    return {"label": label, "files": len(files), "bytes": total_bytes, "rows": rows}


def main() -> None:
    """Run the benchmark and print tables of MB/s and ratios to ``shutil.copy``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster processes")
    parser.add_argument("--synthetic", type=int, default=4, help="large files (0: none)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the LocalCluster run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    inputs = args.inputs or [str(SHARED_DATA / "haadf-films"), str(SHARED_DATA / "formats")]
    cluster = client = None
    if not args.no_cluster:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    tables = []
    try:
        tables.append(_measure("real files", _files(inputs), args.repeat, client, args.workers))
        if args.synthetic:
            with tempfile.TemporaryDirectory() as folder:
                large = _write_synthetic(Path(folder), args.synthetic)
                tables.append(
                    _measure("large synthetic files", large, args.repeat, client, args.workers)
                )
    finally:
        if client is not None:
            client.close()
            cluster.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()
        record = {
            "repeat": args.repeat,
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15": load,
            "tables": tables,
        }
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
