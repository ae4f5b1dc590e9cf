"""Speed: per-stage throughput, cold start, peak memory, strong scaling, side-by-side ratios.

Three measurements run on the same benchmark images in one process:

:func:`serial_loop`
    What a user would script: for each file ``read_micrograph`` -> pre-process -> network
    -> map back, clean, separate and measure (``analyze_mask``) -> write the particle
    table and the mask; one image after another, torch using every core. Each stage is
    timed separately (read, pre-process, inference, post-process, write), the model load
    and the first (warm-up) image are reported apart from the steady state. It runs in
    a fresh spawned process (:func:`run_serial_isolated`) so that its peak memory is its
    own.
:func:`pipeline_run`
    :func:`antema_scale.pipeline.run_analysis` on a fresh local Dask cluster of ``N``
    single-threaded worker processes: cold start = cluster start + model load on every
    worker (the worker plugin) + one warm-up image per worker; steady state = the whole
    run (ingest into Zarr, segmentation, masks written back, measurement, merged tables).
    Peak resident memory (and CUDA memory) is read from every worker process after the run.
:func:`separation_comparison`
    ``analyze_mask`` (default mode and the paper's UECS) against the full-frame port of
    the reference program (``benchmarks/reference_fullframe.py``) on the true masks.

All times are wall-clock seconds (``time.perf_counter``); CUDA work is synchronised
before a timer stops.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from antema_scale.benchmark.dataset import BenchImage

#: Stages of the per-image breakdown, in pipeline order.
STAGES: tuple[str, ...] = ("read", "preprocess", "inference", "postprocess", "write")
#: Where the full-frame baseline of the reference program lives (a script, not a module).
REFERENCE_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "reference_fullframe.py"


@dataclass(frozen=True)
class ModelChoice:
    """Which segmenter the speed benchmark runs, and whether its weights are trained.

    Attributes
    ----------
    settings : antema_scale.pipeline.SegmentationSettings
        Segmenter, model file, device and batch size handed to the pipeline.
    description : str
        Human-readable name for the report.
    trained : bool
        False for the random-initialised stand-in used when no model is shipped (same
        architecture and cost, meaningless masks: speed only).
    """

    settings: Any
    description: str
    trained: bool


def choose_model(
    segmenter: str,
    model_path: str | Path | None,
    device: str,
    workdir: Path,
    *,
    batch_size: int = 8,
) -> ModelChoice:
    """Resolve the segmenter of a benchmark run.

    Parameters
    ----------
    segmenter : {"model", "threshold"}
        Network or the classical baseline.
    model_path : str or Path or None
        Weights file; None: the shipped model, or, when none is shipped yet, an untrained
        network of the default architecture written to ``workdir`` (speed only).
    device : str
        ``auto|cpu|cuda|cuda:N|mps``.
    workdir : Path
        Scratch folder.
    batch_size : int
        Tiles per forward pass.

    Returns
    -------
    ModelChoice
    """
    from antema_scale.pipeline import SegmentationSettings

    if segmenter == "threshold":
        return ModelChoice(
            SegmentationSettings(segmenter="threshold", device=device), "threshold baseline", True
        )
    if model_path is None:
        from antema_scale.segment import default_model_path

        if default_model_path().is_file():
            model_path, description, trained = default_model_path(), "shipped model", True
        else:
            model_path = untrained_model(workdir / "untrained-default-architecture.pt")
            description, trained = "untrained default architecture (no shipped model)", False
    else:
        description, trained = f"model {Path(model_path).name}", True
    settings = SegmentationSettings(
        segmenter="model", model_path=str(model_path), device=device, batch_size=batch_size
    )
    return ModelChoice(settings, description, trained)


def untrained_model(path: Path) -> Path:
    """Write a random-initialised network of the default architecture (seeded) to ``path``."""
    import torch

    from antema_scale.segment import NetworkConfig, Preprocessing, build_network, save_model

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(
        path,
        build_network(NetworkConfig()),
        Preprocessing(),
        {"note": "untrained stand-in for speed benchmarks"},
    )
    return path


def _peak_rss_mib() -> float:
    """Peak resident memory of this process, MiB.

    Linux: ``VmHWM`` of ``/proc/self/status`` (the high-water mark of this process's own
    address space). ``getrusage``'s ``ru_maxrss`` is not used there: it survives
    ``fork`` + ``exec``, so spawned workers would report their parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: peak working set from psutil
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover - macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # pragma: no cover


def peak_memory_mib() -> dict[str, float | None]:
    """Peak resident memory of this process and peak CUDA memory allocated by torch (MiB)."""
    rss_mib = _peak_rss_mib()
    gpu_mib: float | None = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        gpu_mib = torch.cuda.max_memory_allocated() / 2**20
    return {"rss_peak_mib": round(rss_mib, 1), "gpu_peak_mib": gpu_mib}


def _synchronise() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class StageClock:
    """Adds up wall time per stage; ``with clock("read"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._stage = ""
        self._started = 0.0

    def __call__(self, stage: str) -> StageClock:
        if stage not in self.seconds:
            raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")
        self._stage = stage
        return self

    def __enter__(self) -> StageClock:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _synchronise()
        self.seconds[self._stage] += time.perf_counter() - self._started


def _process_one(
    path: Path, segmenter: Any, analysis_options: Any, output_dir: Path, clock: StageClock
) -> tuple[int, float]:
    """Read, segment, analyse and write one micrograph; returns (particles, megapixels)."""
    from antema_scale.io import read_micrograph
    from antema_scale.particles import analyze_mask
    from antema_scale.segment.inference import (
        median_particle_diameter_px,
        predict_prepared,
        refine_zoom,
    )
    from antema_scale.segment.preprocess import prepare_image, resample
    from antema_scale.segment.threshold import threshold_segment

    with clock("read"):
        image = read_micrograph(path)
        values = np.asarray(image.values, dtype=np.float32)
        pixel_size = float(min(image.attrs["pixel_size_nm_y"], image.attrs["pixel_size_nm_x"]))
    if segmenter is None:  # the classical baseline: blur + threshold is its "network"
        with clock("inference"):
            mask = threshold_segment(values, pixel_size).mask
        with clock("postprocess"):
            table = analyze_mask(mask, pixel_size, options=analysis_options, image_id=path.stem)
    else:
        # The steps of segment.predict with the pipeline's settings (flips, scale
        # adaptation), timed apart; a second pass counts as preprocess + inference again.
        def run(zoom_factor: float) -> np.ndarray:
            with clock("preprocess"):
                work, _ = prepare_image(
                    values, pixel_size, segmenter.preprocessing, zoom_factor=zoom_factor
                )
            with clock("inference"):
                (probability,) = predict_prepared(
                    segmenter.network,
                    [work],
                    batch_size=segmenter.batch_size,
                    device=segmenter.device,
                    flips=segmenter.flips,
                    precision=segmenter.precision,
                )
            return probability

        probability = run(1.0)
        if segmenter.target_diameter_px is not None:
            zoom = refine_zoom(
                median_particle_diameter_px(probability),
                segmenter.target_diameter_px,
                segmenter.max_refine_zoom,
            )
            if zoom > 1.0:
                probability = run(zoom)
        with clock("postprocess"):
            mask = resample(probability, values.shape) > 0.5
            table = analyze_mask(mask, pixel_size, options=analysis_options, image_id=path.stem)
    with clock("write"):
        table.particles.to_parquet(output_dir / f"{path.stem}.parquet", index=False)
        np.savez_compressed(output_dir / f"{path.stem}_mask.npz", mask=mask)
    return len(table.particles), values.size / 1e6


@dataclass
class _LoopSegmenter:
    network: Any
    preprocessing: Any
    device: Any
    batch_size: int
    flips: int
    target_diameter_px: float | None
    max_refine_zoom: float
    precision: str


def serial_loop(
    paths: Sequence[Path],
    settings: Any,
    analysis_options: Any,
    output_dir: Path,
    *,
    threads: int | None = None,
) -> dict[str, Any]:
    """Process ``paths`` one after another with the package's functions, timing each stage.

    Parameters
    ----------
    paths : sequence of Path
        Micrograph files (the first one is also processed once, untimed, as warm-up).
    settings : antema_scale.pipeline.SegmentationSettings
        Segmenter, model file, device, batch size, flips, precision and scale adaptation (the
        serial loop runs the same inference as the pipeline).
    analysis_options : antema_scale.particles.AnalysisOptions
        Particle-analysis options.
    output_dir : Path
        Where the per-image particle tables and masks are written.
    threads : int, optional
        torch CPU threads (default: every usable core, as a plain script gets).

    Returns
    -------
    dict
        ``model_load_s``, ``first_image_s``, ``stage_seconds`` (sums over the timed
        images), ``images``, ``megapixels``, ``seconds`` (steady state), ``images_per_s``,
        ``megapixels_per_s``, ``particles``, ``threads``, ``device`` and the peak memory.
    """
    import torch

    from antema_scale.pipeline.cluster import usable_cores

    threads = threads or usable_cores()
    torch.set_num_threads(threads)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    segmenter: _LoopSegmenter | None = None
    device = "cpu"
    if settings.segmenter == "model":
        from antema_scale.segment import load_model
        from antema_scale.segment.inference import SCALE_ADAPTATION

        model = load_model(settings.resolved_model_path(), device=settings.device)
        segmenter = _LoopSegmenter(
            model.inference_network(),  # what predict runs: batch norm folded, channels-last
            model.preprocessing,
            model.device,
            settings.batch_size,
            settings.flips,
            SCALE_ADAPTATION["target_diameter_px"] if settings.scale_adaptation else None,
            SCALE_ADAPTATION["max_refine_zoom"],
            settings.precision,
        )
        device = str(model.device)
    model_load = time.perf_counter() - started
    started = time.perf_counter()
    _process_one(Path(paths[0]), segmenter, analysis_options, output_dir, StageClock())
    first_image = time.perf_counter() - started
    clock = StageClock()
    particles = 0
    megapixels = 0.0
    started = time.perf_counter()
    for path in paths:
        count, size = _process_one(Path(path), segmenter, analysis_options, output_dir, clock)
        particles += count
        megapixels += size
    seconds = time.perf_counter() - started
    return {
        "model_load_s": model_load,
        "first_image_s": first_image,
        "stage_seconds": clock.seconds,
        "images": len(paths),
        "megapixels": megapixels,
        "seconds": seconds,
        "images_per_s": len(paths) / seconds,
        "megapixels_per_s": megapixels / seconds,
        "particles": particles,
        "threads": threads,
        "device": device,
        **peak_memory_mib(),
    }


def _serial_in_child(arguments: tuple[Any, ...]) -> dict[str, Any]:
    paths, settings, analysis_options, output_dir, threads = arguments
    return serial_loop(paths, settings, analysis_options, output_dir, threads=threads)


def run_serial_isolated(
    paths: Sequence[Path],
    settings: Any,
    analysis_options: Any,
    output_dir: Path,
    *,
    threads: int | None = None,
) -> dict[str, Any]:
    """:func:`serial_loop` in a fresh spawned process (its own peak memory, no shared state)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        arguments = ([Path(p) for p in paths], settings, analysis_options, output_dir, threads)
        return pool.submit(_serial_in_child, arguments).result()


def _warm_worker(spec: Any, path: str) -> float:
    """Segment one image on this worker (first-call overheads); returns seconds."""
    from antema_scale.io import read_micrograph
    from antema_scale.pipeline.model_plugin import cached_segmenter

    started = time.perf_counter()
    image = read_micrograph(path)
    size = float(min(image.attrs["pixel_size_nm_y"], image.attrs["pixel_size_nm_x"]))
    cached_segmenter(spec).segment([np.asarray(image.values, dtype=np.float32)], [size])
    _synchronise()
    return time.perf_counter() - started


def _worker_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def pipeline_run(
    input_dir: Path,
    warmup_image: Path,
    settings: Any,
    analysis_options: Any,
    output_dir: Path,
    *,
    workers: int,
) -> dict[str, Any]:
    """Run the Dask pipeline on a fresh local cluster of ``workers`` processes.

    Parameters
    ----------
    input_dir : Path
        Folder of micrographs (all of one size).
    warmup_image : Path
        Image segmented once on every worker before the timed run.
    settings : antema_scale.pipeline.SegmentationSettings
        Segmenter settings.
    analysis_options : antema_scale.particles.AnalysisOptions
        Particle-analysis options.
    output_dir : Path
        Run folder (fresh).
    workers : int
        Worker processes, one thread each (one GPU each when CUDA is present).

    Returns
    -------
    dict
        ``workers``, ``cluster_start_s``, ``model_load_s`` (plugin on every worker),
        ``warmup_s`` (slowest worker), ``cold_start_s`` (their sum), ``seconds`` (the
        run), ``images``, ``megapixels``, ``images_per_s``, ``megapixels_per_s``,
        ``particles``, ``segment_seconds``/``analyze_seconds`` (summed over images,
        from the run's image table), ``worker_memory`` (per worker peak RSS and CUDA MiB),
        ``worker_torch_threads``, ``errors``.
    """
    from distributed import Client, LocalCluster

    from antema_scale.pipeline import ClusterSpec, run_analysis
    from antema_scale.pipeline.cluster import cuda_device_count, local_cluster_shape, usable_cores
    from antema_scale.pipeline.model_plugin import SegmenterPlugin
    from antema_scale.pipeline.segmenters import SegmenterSpec

    spec = SegmenterSpec.from_settings(settings)
    shape = local_cluster_shape(
        ClusterSpec(workers=workers, threads_per_worker=1, dashboard_address=":0"),
        cores=usable_cores(),
        gpus=cuda_device_count(),
    )
    started = time.perf_counter()
    with LocalCluster(**shape) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        cluster_start = time.perf_counter() - started
        started = time.perf_counter()
        client.register_plugin(SegmenterPlugin(spec))
        model_load = time.perf_counter() - started
        addresses = list(client.scheduler_info(n_workers=-1)["workers"])
        started = time.perf_counter()
        warm = [
            client.submit(
                _warm_worker,
                spec,
                str(warmup_image),
                workers=[a],
                pure=False,
                allow_other_workers=False,
            )
            for a in addresses
        ]
        client.gather(warm)
        warmup = time.perf_counter() - started
        started = time.perf_counter()
        result = run_analysis(
            input_dir,
            output_dir,
            segmentation=settings,
            analysis_options=analysis_options,
            client=client,
            progress=False,
        )
        seconds = time.perf_counter() - started
        memory = client.run(peak_memory_mib)
        threads = client.run(_worker_threads)
    images = result.images
    megapixels = float((images["height_px"] * images["width_px"]).sum() / 1e6) if len(images) else 0
    return {
        "workers": workers,
        "cluster_start_s": cluster_start,
        "model_load_s": model_load,
        "warmup_s": warmup,
        "cold_start_s": cluster_start + model_load + warmup,
        "seconds": seconds,
        "images": len(images),
        "megapixels": megapixels,
        "images_per_s": len(images) / seconds,
        "megapixels_per_s": megapixels / seconds,
        "particles": len(result.particles),
        "segment_seconds": float(images["segment_seconds"].sum()) if len(images) else 0.0,
        "analyze_seconds": float(images["analyze_seconds"].sum()) if len(images) else 0.0,
        "worker_memory": list(memory.values()),
        "worker_torch_threads": sorted(set(threads.values())),
        "errors": [f"{r.source}: {r.error_type}: {r.message}" for r in result.errors.itertuples()],
    }


def strong_scaling(runs: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """Speed-up and efficiency of pipeline runs over their worker counts.

    The reference is the run with the fewest workers ``w0``: speed-up ``T(w0) / T(w)``,
    efficiency ``speed-up * w0 / w`` (1 = perfect strong scaling).

    Parameters
    ----------
    runs : sequence of dict
        Outputs of :func:`pipeline_run` on the same images.

    Returns
    -------
    list of dict
        ``workers, seconds, speedup, efficiency`` per run, by worker count.
    """
    if not runs:
        return []
    ordered = sorted(runs, key=lambda run: run["workers"])
    base = ordered[0]
    rows = []
    for run in ordered:
        speedup = base["seconds"] / run["seconds"]
        rows.append(
            {
                "workers": run["workers"],
                "seconds": run["seconds"],
                "speedup": speedup,
                "efficiency": speedup * base["workers"] / run["workers"],
            }
        )
    return rows


def load_reference_baseline(script: Path = REFERENCE_SCRIPT) -> ModuleType | None:
    """Import the full-frame port of the reference program, or None when it is absent."""
    if not script.is_file():
        return None
    spec = importlib.util.spec_from_file_location("antema_reference_fullframe", script)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def separation_comparison(images: Sequence[BenchImage]) -> dict[str, Any]:
    """Time particle analysis of the true masks: package modes vs the full-frame baseline.

    Parameters
    ----------
    images : sequence of BenchImage
        Benchmark images whose true union masks are analysed.

    Returns
    -------
    dict
        ``rows`` (per image: size, true particles, seconds and particles found by the
        default mode, ``uecs-paper`` and the reference port, speed-ups) and
        ``reference_available``.
    """
    from antema_scale.particles import AnalysisOptions, analyze_mask

    reference = load_reference_baseline()
    default = AnalysisOptions()
    rows = []
    for image in images:
        mask = image.read_true_mask()
        px = image.pixel_size_nm
        t_default, table = _timed(lambda m=mask, p=px: analyze_mask(m, p, options=default))
        t_paper, paper = _timed(
            lambda m=mask, p=px: analyze_mask(m, p, options=AnalysisOptions.paper())
        )
        row: dict[str, Any] = {
            "image": image.path.stem,
            "size": image.size,
            "true_particles": image.n_particles,
            "default_mode": default.separation,
            "default_s": t_default,
            "default_found": len(table.particles),
            "uecs_paper_s": t_paper,
            "uecs_paper_found": len(paper.particles),
        }
        if reference is not None:
            t_reference, found = _timed(lambda m=mask, p=px: reference.reference_analyze(m, p))
            row.update(
                reference_s=t_reference,
                reference_found=len(found),
                speedup_default_vs_reference=t_reference / t_default,
                speedup_uecs_paper_vs_reference=t_reference / t_paper,
            )
        rows.append(row)
    return {"reference_available": reference is not None, "rows": rows}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages of this machine (empty where unknown)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # pragma: no cover - not available on this platform
        return []
