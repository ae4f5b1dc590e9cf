"""Benchmark: memory of a long pipeline run (default 2,000 synthetic 1024² micrographs).

Target (issue 6, "Speed and memory"): the peak resident memory of every worker stays
bounded (< 2 GiB) however many images a run has.

What it does:

1. writes ``--bases`` (default 16) synthetic HAADF micrographs with
   :func:`bench_pipeline.write_images` (calibrated HDF5, 0.25 nm/px), then ``--images``
   input files, each a copy of one base file whose pixels are the base image plus fresh
   Gaussian noise (``--noise`` x the base image's standard deviation): every file has its
   own sha256, so the store cannot deduplicate them, and the files are cheap to write;
2. runs the real pipeline, :func:`antema_scale.pipeline.run_analysis` from the files
   (ingest into Zarr included, masks written back, per-image results, merged tables), on
   a local cluster of ``--workers`` single-threaded worker processes with an explicit
   ``--memory-limit`` (so Dask neither pauses nor restarts a worker below it);
3. samples the resident set size (RSS) of every worker process and of this (client)
   process, which also hosts the scheduler of the local cluster, every ``--interval``
   seconds from a thread on the client (psutil; nothing is sent to the workers), and once
   more when 10 %, 50 % and 100 % of the images are done, and after ``run_analysis``
   returned (merged tables written: ``after_run``); at the end the kernel's peak
   RSS (``ru_maxrss``) of every worker and of the client is read as well, which catches
   peaks between samples;
4. writes ``benchmarks/results/bench_memory.json``: the command, the machine's
   fingerprint, per-process peaks, RSS at the milestones, the slope of worker RSS over
   the second half of the images (MiB per 1,000 images; ~0 means flat), images/s,
   load averages and a down-sampled timeline; prints a summary. The temporary folder
   (inputs + store: about 4 MiB + 4 MiB per image) is removed unless ``--keep``.

The default segmenter is the classical ``threshold`` one: the network costs about
1.5 core-seconds per 1024² image on CPU, so 2,000 images would need ~50 min of both
cores for inference alone on the shared 2-core development machine. The threshold
segmenter exercises the same graph (segmentation task -> mask written into the store ->
measurement task -> per-image result file); ``--segmenter model`` measures the run with
the shipped network (one model per worker adds its weights and torch's buffers to each
worker's RSS).

Run: ``nice -n 10 python benchmarks/bench_memory.py [--images 2000] [--segmenter threshold|model]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import worker_peak_memory, write_images  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "bench_memory.json"
MIB = 1024.0 * 1024.0
#: Fractions of the images after which the RSS of every process is recorded.
MILESTONES: tuple[float, ...] = (0.1, 0.5, 1.0)


def write_noisy_inputs(
    folder: Path,
    bases: Sequence[Path],
    n: int,
    *,
    noise: float = 0.05,
    seed: int = 0,
) -> list[Path]:
    """Write ``n`` input files, each a base file with fresh noise added to its pixels.

    File ``i`` is a byte copy of ``bases[i % len(bases)]`` (so the HDF5 layout and the
    calibration attributes are exactly those of the base) whose ``data`` set is replaced
    by the base pixels plus Gaussian noise of standard deviation ``noise`` times the
    base's standard deviation.

    Parameters
    ----------
    folder : Path
        Where to write ``input_<i>.h5`` (created).
    bases : sequence of Path
        Calibrated HDF5 micrographs (``data`` set, attrs ``scale`` in nm/px).
    n : int
        Number of files.
    noise : float
        Noise level relative to the base image's standard deviation (dimensionless).
    seed : int
        Seed of the noise generator.

    Returns
    -------
    list of Path
        The written files, in order.
    """
    if not bases:
        raise ValueError("need at least one base image")
    folder.mkdir(parents=True, exist_ok=True)
    pixels = []
    for base in bases:
        with h5py.File(base, "r") as handle:
            pixels.append(np.asarray(handle["data"][...], dtype=np.float32))
    sigmas = [float(image.std()) * noise for image in pixels]
    rng = np.random.default_rng(seed)
    width = max(5, len(str(n - 1)))
    paths = []
    for index in range(n):
        which = index % len(bases)
        path = folder / f"input_{index:0{width}d}.h5"
        shutil.copyfile(bases[which], path)
        image = pixels[which]
        noisy = image + rng.standard_normal(image.shape, dtype=np.float32) * np.float32(
            sigmas[which]
        )
        with h5py.File(path, "r+") as handle:
            handle["data"][...] = noisy
        paths.append(path)
    return paths


def milestone_counts(total: int, fractions: Sequence[float] = MILESTONES) -> dict[int, float]:
    """Number of finished images at which each milestone fraction is reached.

    Parameters
    ----------
    total : int
        Images in the run.
    fractions : sequence of float
        Milestones as fractions of ``total`` (0 < f <= 1).

    Returns
    -------
    dict
        ``{images done: fraction}``; at least 1 image per milestone (fractions that fall
        on the same count keep the largest).
    """
    counts: dict[int, float] = {}
    for fraction in sorted(fractions):
        counts[max(1, math.ceil(fraction * total))] = fraction
    return counts


@dataclass
class Sample:
    """RSS of the watched processes at one moment.

    Attributes
    ----------
    seconds : float
        Time since sampling started, s.
    done : int
        Images finished (analysed or failed) at that moment.
    rss_mib : dict
        Process name -> resident set size in MiB (missing when the process had gone).
    load1 : float
        1-minute load average of the machine.
    """

    seconds: float
    done: int
    rss_mib: dict[str, float]
    load1: float


def rss_slope_per_1000(
    samples: Sequence[Sample], name: str, *, from_fraction: float = 0.5
) -> float:
    """Least-squares slope of ``name``'s RSS against images done, in MiB per 1,000 images.

    Only samples with at least ``from_fraction`` of the final image count are used (the
    start of a run, with imports and first allocations, is not growth).

    Returns
    -------
    float
        MiB per 1,000 images; NaN when fewer than 3 samples or a single image count remain.
    """
    if not samples:
        return float("nan")
    last = max(sample.done for sample in samples)
    points = [
        (sample.done, sample.rss_mib[name])
        for sample in samples
        if name in sample.rss_mib and sample.done >= from_fraction * last and sample.done > 0
    ]
    if len(points) < 3 or len({done for done, _ in points}) < 2:
        return float("nan")
    done, rss = np.asarray(points, dtype=float).T
    slope = np.polyfit(done, rss, 1)[0]
    return float(slope * 1000.0)


def samples_until(samples: Sequence[Sample], last: Sample | None) -> list[Sample]:
    """The samples taken up to ``last`` (the one at the last image; None: all of them).

    Samples taken afterwards (merging the tables) would bias the per-image slope.
    """
    if last is None:
        return list(samples)
    return [sample for sample in samples if sample.seconds <= last.seconds]


def peaks(samples: Sequence[Sample]) -> dict[str, float]:
    """Largest sampled RSS (MiB) of every process."""
    result: dict[str, float] = {}
    for sample in samples:
        for name, value in sample.rss_mib.items():
            result[name] = max(result.get(name, 0.0), value)
    return result


def downsample(samples: Sequence[Sample], max_points: int) -> list[Sample]:
    """At most ``max_points`` samples, evenly spread, keeping the first and the last."""
    if len(samples) <= max_points or max_points < 2:
        return list(samples)
    picks = np.unique(np.linspace(0, len(samples) - 1, max_points).round().astype(int))
    return [samples[index] for index in picks]


@dataclass
class RssSampler:
    """Samples the RSS of a set of processes from a background thread.

    Parameters
    ----------
    pids : mapping
        Process name -> pid.
    interval : float
        Seconds between samples.
    """

    pids: Mapping[str, int]
    interval: float = 2.0
    samples: list[Sample] = field(default_factory=list)
    marks: dict[str, Sample] = field(default_factory=dict)
    done: int = 0

    def __post_init__(self) -> None:
        import psutil

        self._processes = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._started = time.perf_counter()

    def sample(self) -> Sample:
        """Take one sample now (also stored in :attr:`samples`)."""
        import psutil

        rss: dict[str, float] = {}
        for name, process in self._processes.items():
            try:
                rss[name] = process.memory_info().rss / MIB
            except psutil.Error:
                continue
        sample = Sample(time.perf_counter() - self._started, self.done, rss, os.getloadavg()[0])
        with self._lock:
            self.samples.append(sample)
        return sample

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.marks["after_run"] = self.sample()


def _worker_profiler_settings() -> tuple[tuple[str, Any], ...]:
    """Dask's statistical profiler settings in a worker process (run there)."""
    import dask

    return (
        ("enabled", bool(dask.config.get("distributed.worker.profile.enabled"))),
        ("cycle", str(dask.config.get("distributed.worker.profile.cycle"))),
        ("history_cycles", int(dask.config.get("distributed.admin.low-level-log-length"))),
    )


def _own_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _code_revision() -> dict[str, Any]:
    """Git commit of the package and whether ``antema_scale/`` had uncommitted changes."""
    import subprocess

    import antema_scale
    from antema_scale.provenance import git_revision

    package = Path(antema_scale.__file__).resolve().parent
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            cwd=package,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty: bool | None = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return {"git_revision": git_revision(package), "package_has_uncommitted_changes": dirty}


def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Write the inputs, run the pipeline under the sampler; return the results record."""
    import dask
    from distributed import Client, LocalCluster

    from antema_scale.pipeline import SegmentationSettings, run_analysis

    if args.no_worker_profile:
        # the nannies pass this process's Dask config on to the worker processes
        dask.config.set({"distributed.worker.profile.enabled": False})

    started = time.perf_counter()
    bases = write_images(work_dir / "bases", args.bases, args.size)
    files = write_noisy_inputs(
        work_dir / "inputs", bases, args.images, noise=args.noise, seed=args.seed
    )
    write_seconds = time.perf_counter() - started
    input_bytes = sum(path.stat().st_size for path in files)

    settings = SegmentationSettings(segmenter=args.segmenter, device="cpu")
    milestones = milestone_counts(args.images)
    out = work_dir / "run"
    load_before = os.getloadavg()
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        worker_pids = client.run(os.getpid)
        profiler = set(client.run(_worker_profiler_settings).values())
        names = {address: f"worker-{index}" for index, address in enumerate(sorted(worker_pids))}
        pids = {names[address]: pid for address, pid in worker_pids.items()} | {
            "client": os.getpid()
        }
        timing: dict[str, float] = {}
        sampler = RssSampler(pids, interval=args.interval)

        def on_outcome(outcome: Any) -> None:
            sampler.done += 1
            if sampler.done == 1:
                timing["first_image"] = time.perf_counter()
            if outcome.error_type:
                timing["failed"] = timing.get("failed", 0) + 1
            if sampler.done in milestones:
                sampler.marks[f"{round(100 * milestones[sampler.done])}%"] = sampler.sample()
            if sampler.done == args.images:
                timing["last_image"] = time.perf_counter()

        with sampler:
            run_started = time.perf_counter()
            result = run_analysis(
                files, out, segmentation=settings, client=client, progress=on_outcome
            )
            run_seconds = time.perf_counter() - run_started
        worker_kernel_peaks = {
            names[address]: value for address, value in worker_peak_memory(client).items()
        }
        worker_memory_limit = {
            names[address]: info["memory_limit"] / MIB
            for address, info in client.scheduler_info()["workers"].items()
        }
    client_kernel_peak = _own_peak_rss_mib()
    load_after = os.getloadavg()
    store_bytes = sum(
        path.stat().st_size for path in (out / "store.zarr").rglob("*") if path.is_file()
    )
    n_particles = len(result.particles)
    n_errors = len(result.errors)
    del result

    samples = sampler.samples
    graph_samples = samples_until(samples, sampler.marks.get("100%"))
    sampled_peaks = peaks(samples)
    workers = sorted(name for name in pids if name != "client")
    graph_seconds = timing.get("last_image", float("nan")) - timing.get("first_image", float("nan"))
    record: dict[str, Any] = {
        "benchmark": "bench_memory",
        "command": (
            f"nice -n 10 python benchmarks/bench_memory.py --images {args.images} --size {args.size} "
            f"--bases {args.bases} --noise {args.noise} --segmenter {args.segmenter} --workers {args.workers} "
            f"--memory-limit {args.memory_limit} --interval {args.interval}"
            + (" --no-worker-profile" if args.no_worker_profile else "")
        ),
        "images": args.images,
        "image_side_px": args.size,
        "base_images": args.bases,
        "noise_relative_to_base_std": args.noise,
        "segmenter": args.segmenter,
        "workers": args.workers,
        "threads_per_worker": 1,
        "worker_profiler": dict(sorted(profiler)[0]) if len(profiler) == 1 else "mixed",
        "worker_memory_limit_mib": {
            name: round(value, 1) for name, value in worker_memory_limit.items()
        },
        "target_peak_worker_rss_mib": 2048,
        "input_bytes": input_bytes,
        "store_bytes": store_bytes,
        "seconds_writing_inputs": round(write_seconds, 1),
        "run_seconds": round(run_seconds, 1),
        "seconds_until_first_image": round(
            timing.get("first_image", float("nan")) - run_started, 1
        ),
        "images_per_s_whole_run": round(args.images / run_seconds, 4),
        "images_per_s_first_to_last_image": round((args.images - 1) / graph_seconds, 4)
        if graph_seconds > 0
        else None,
        "analysed": args.images - n_errors,
        "errors": n_errors,
        "particles": n_particles,
        "peak_rss_mib": {
            "sampled": {name: round(value, 1) for name, value in sampled_peaks.items()},
            "kernel_ru_maxrss": {
                name: round(value, 1) for name, value in worker_kernel_peaks.items()
            }
            | {"client": round(client_kernel_peak, 1)},
        },
        "peak_worker_rss_mib": round(
            max(max(worker_kernel_peaks.values()), *(sampled_peaks[w] for w in workers)), 1
        ),
        "rss_mib_at_images_done": {
            mark: {"images_done": sample.done, "seconds": round(sample.seconds, 1)}
            | {name: round(value, 1) for name, value in sample.rss_mib.items()}
            for mark, sample in sampler.marks.items()
        },
        "rss_slope_mib_per_1000_images_second_half": {  # up to the last image, merge excluded
            name: round(rss_slope_per_1000(graph_samples, name), 2) for name in [*workers, "client"]
        },
        "samples": len(samples),
        "sample_interval_s": args.interval,
        "timeline": [
            {"s": round(sample.seconds, 1), "done": sample.done, "load1": round(sample.load1, 2)}
            | {name: round(value, 1) for name, value in sample.rss_mib.items()}
            for sample in downsample(samples, args.timeline_points)
        ],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "load1_during_mean": round(float(np.mean([sample.load1 for sample in samples])), 2),
        "notes": (
            "RSS = resident set size. 'client' is the process that calls run_analysis; it also "
            "hosts the scheduler of the local cluster, and holds the per-image outcomes and the "
            "merged tables at the end of the run. 'sampled' peaks are the largest of the samples "
            "taken every sample_interval_s and at the milestones; 'kernel_ru_maxrss' is the "
            "kernel's high-water mark of each process over its whole life (the workers are fresh "
            "processes started for this run; the client's includes writing the inputs)."
        ),
    }
    return record


def main() -> None:
    """Parse arguments, run the benchmark, write the JSON record and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="input files (images) in the run")
    parser.add_argument("--size", type=int, default=1024, help="image side in px")
    parser.add_argument(
        "--bases", type=int, default=16, help="distinct synthetic micrographs behind the inputs"
    )
    parser.add_argument(
        "--noise", type=float, default=0.05, help="added noise, x the base image's std"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the added noise")
    parser.add_argument("--segmenter", choices=["threshold", "model"], default="threshold")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GiB", help="Dask memory limit per worker")
    parser.add_argument(
        "--no-worker-profile",
        action="store_true",
        help="switch off Dask's statistical profiler in the workers (its history grows RSS)",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples")
    parser.add_argument(
        "--timeline-points", type=int, default=300, help="samples kept in the JSON timeline"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="parent of the temporary folder"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    from antema_scale.provenance import hardware_fingerprint, software_versions

    revision = _code_revision()
    parent = args.work_dir or Path(tempfile.gettempdir())
    needed = args.images * (args.size * args.size * 4 * 2.2)
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise SystemExit(
            f"{parent} has {free / 2**30:.1f} GiB free; about {needed / 2**30:.1f} GiB needed"
        )
    work_dir = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=parent))
    try:
        record = run(args, work_dir)
    finally:
        if args.keep:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    record["code_at_start"] = revision
    record["hardware"] = hardware_fingerprint()
    record["software"] = software_versions()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    shown = ("timeline", "hardware", "software", "notes")
    print(json.dumps({key: value for key, value in record.items() if key not in shown}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
