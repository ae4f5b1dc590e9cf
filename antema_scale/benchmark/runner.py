"""One benchmark run: build the dataset, measure speed and accuracy, return the record."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from antema_scale.benchmark.dataset import DEFAULT_SIZES, build_dataset
from antema_scale.benchmark.report import RECORD_FORMAT, fingerprint

#: Where the EMPS training data lives beside a checkout (``../shared/data/emps-train``).
DEFAULT_EMPS_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "emps-train"


@dataclass
class BenchConfig:
    """What a benchmark run measures (sizes in px, times in s).

    Parameters
    ----------
    name : str
        Name of the run (file stem of the result).
    sizes : tuple of int
        Image sides of the speed dataset.
    n_per_size : int
        Images per size.
    workers : tuple of int
        Worker counts of the strong-scaling runs of the pipeline.
    speed, serial, separation, accuracy : bool
        Which parts run: the speed runs at all; within them the serial loop and the
        separation comparison; the accuracy benchmark.
    segmenter : {"model", "threshold"}
        Segmenter of the speed runs.
    model_path : str or None
        Weights file (None: the shipped model, or an untrained stand-in for speed only).
    device : str
        ``auto|cpu|cuda|cuda:N|mps``.
    batch_size : int
        Tiles per forward pass.
    serial_threads : tuple of int
        torch threads of extra serial loops; the loop with every usable core (what a
        plain script gets) always runs first and is the reference of the ratios.
    separation_images : int
        True masks per size timed against the full-frame reference port.
    separation_sizes : tuple of int
        Sizes whose masks are timed that way (empty: every size; the reference port's
        cost grows with particles x pixels, about 16x per doubling of the side).
    synthetic_per_level : int
        Synthetic accuracy images per overlap level.
    synthetic_size : int
        Side of the synthetic accuracy images, px.
    emps_dir : str or None
        EMPS folder (``images/`` + ``segmaps/``); None or missing: no EMPS rows.
    emps_limit : int or None
        Held-out EMPS images used (None: the whole test split).
    workdir : str or None
        Scratch folder (default: a temporary one, deleted after the run).
    seed : int
        Base seed of the synthetic images.
    """

    name: str = "bench"
    sizes: tuple[int, ...] = DEFAULT_SIZES
    n_per_size: int = 4
    workers: tuple[int, ...] = (1, 2)
    speed: bool = True
    serial: bool = True
    separation: bool = True
    accuracy: bool = True
    segmenter: str = "model"
    model_path: str | None = None
    device: str = "auto"
    batch_size: int = 8
    serial_threads: tuple[int, ...] = ()
    separation_images: int = 1
    separation_sizes: tuple[int, ...] = ()
    synthetic_per_level: int = 2
    synthetic_size: int = 1024
    emps_dir: str | None = str(DEFAULT_EMPS_DIR)
    emps_limit: int | None = None
    workdir: str | None = None
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.segmenter not in ("model", "threshold"):
            raise ValueError(f"segmenter must be 'model' or 'threshold', not {self.segmenter!r}")
        if not self.sizes or min(self.sizes) < 64:
            raise ValueError(f"sizes must be >= 64 px, got {self.sizes}")
        if not self.workers or min(self.workers) < 1:
            raise ValueError(f"worker counts must be >= 1, got {self.workers}")
        if self.n_per_size < 1:
            raise ValueError(f"n_per_size must be >= 1, got {self.n_per_size}")
        if self.synthetic_per_level < 0 or self.separation_images < 0:
            raise ValueError("image counts must be >= 0")
        if self.synthetic_size < 64:
            raise ValueError(f"synthetic_size must be >= 64 px, got {self.synthetic_size}")
        if self.emps_limit is not None and self.emps_limit < 0:
            raise ValueError(f"emps_limit must be >= 0, got {self.emps_limit}")
        if any(t < 1 for t in self.serial_threads):
            raise ValueError(f"serial thread counts must be >= 1, got {self.serial_threads}")

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """A run that finishes in under two minutes on two loaded cores: two 512² images, one
        pipeline run on 2 workers (no scaling; pass ``workers=(1, 2)`` for it), a tiny
        accuracy set."""
        base = cls(
            name="quick",
            sizes=(512,),
            n_per_size=2,
            workers=(2,),
            synthetic_per_level=1,
            synthetic_size=256,
            emps_limit=1,
        )
        return dataclasses.replace(base, **changes)


Progress = Callable[[str], None]


def _serial_threads(config: BenchConfig) -> tuple[int, ...]:
    """torch thread counts of the serial loops: every usable core first, then the others."""
    from antema_scale.pipeline.cluster import usable_cores

    first = usable_cores()
    extra = [t for t in config.serial_threads if t != first]
    return (first, *dict.fromkeys(extra))


def _speed(config: BenchConfig, workdir: Path, say: Progress, notes: list[str]) -> dict[str, Any]:
    from antema_scale.benchmark.speed import (
        choose_model,
        load_average,
        pipeline_run,
        run_serial_isolated,
        separation_comparison,
        strong_scaling,
    )
    from antema_scale.particles import AnalysisOptions

    choice = choose_model(
        config.segmenter, config.model_path, config.device, workdir, batch_size=config.batch_size
    )
    if not choice.trained:
        notes.append(
            "speed: no shipped model was found, so the network is an untrained "
            "random-initialised one of the default architecture (same cost, masks meaningless)"
        )
    options = AnalysisOptions()
    say(f"writing {config.n_per_size} synthetic images per size {list(config.sizes)}")
    dataset = build_dataset(
        workdir / "dataset", sizes=config.sizes, n_per_size=config.n_per_size, seed=config.seed
    )
    blocks = []
    for size in dataset.sizes:
        images = dataset.of_size(size)
        paths = [image.path for image in images]
        block: dict[str, Any] = {"size": size, "images": len(images), "pipeline": []}
        block["serial"] = []
        for threads in _serial_threads(config) if config.serial else ():
            say(f"{size}²: serial per-image loop on {len(paths)} images, {threads} thread(s)")
            load = load_average()
            serial = run_serial_isolated(
                paths,
                choice.settings,
                options,
                workdir / f"serial-{size}-t{threads}",
                threads=threads,
            )
            serial["load_average"] = load
            block["serial"].append(serial)
        for workers in sorted(set(config.workers)):
            say(f"{size}²: pipeline with {workers} worker(s)")
            load = load_average()
            run = pipeline_run(
                dataset.folder(size),
                paths[0],
                choice.settings,
                options,
                workdir / f"pipeline-{size}-w{workers}",
                workers=workers,
            )
            run["load_average"] = load
            block["pipeline"].append(run)
        block["scaling"] = strong_scaling(block["pipeline"])
        if block["pipeline"]:
            widest = max(block["pipeline"], key=lambda run: run["workers"])
            block["pipeline_vs_serial"] = [
                {
                    "workers": widest["workers"],
                    "serial_threads": serial["threads"],
                    "speedup": widest["images_per_s"] / serial["images_per_s"],
                }
                for serial in block["serial"]
            ]
        blocks.append(block)
    separation: dict[str, Any] = {}
    if config.separation and config.separation_images:
        sizes = [s for s in dataset.sizes if s in (config.separation_sizes or dataset.sizes)]
        chosen = [i for s in sizes for i in dataset.of_size(s)[: config.separation_images]]
        say(f"separation: analyse_mask vs the full-frame reference on {len(chosen)} true masks")
        separation = separation_comparison(chosen)
        if not separation["reference_available"]:
            notes.append("separation: benchmarks/reference_fullframe.py not found; no baseline")
    device = choice.settings.device
    return {
        "segmenter": choice.description,
        "model_path": choice.settings.model_path,
        "model": _model_summary(choice.settings.resolved_model_path()),
        "trained_model": choice.trained,
        "device": device,
        "separation_mode": options.separation,
        "sizes": blocks,
        "separation": separation,
    }


def _accuracy(config: BenchConfig, say: Progress, notes: list[str]) -> dict[str, Any]:
    from antema_scale.benchmark.accuracy import (
        accuracy_benchmark,
        emps_truth,
        segmenters,
        synthetic_truth,
    )
    from antema_scale.segment import default_model_path, load_model

    model = None
    description = "none"
    path = Path(config.model_path) if config.model_path else default_model_path()
    if path.is_file():
        model = load_model(path, device=config.device)
        description = f"{path.name} (sha256 {str(model.metadata.get('weights_sha256'))[:12]})"
    else:
        notes.append(
            f"accuracy: no trained model at {path}; only the threshold baseline and the true "
            "masks were evaluated"
        )
    images = []
    if config.synthetic_per_level:
        say(f"accuracy: {config.synthetic_per_level} synthetic image(s) per overlap level")
        images += synthetic_truth(
            n_per_level=config.synthetic_per_level,
            size=config.synthetic_size,
            seed=1000 + config.seed,
        )
    emps = Path(config.emps_dir) if config.emps_dir else None
    split_seed = _model_split_seed(model)
    if emps is not None and (emps / "images").is_dir():
        say(f"accuracy: reading held-out EMPS images (test split, seed {split_seed})")
        images += emps_truth(emps, limit=config.emps_limit, split_seed=split_seed)
    else:
        notes.append(f"accuracy: EMPS folder {emps} not found; no EMPS rows")
    if not images:
        return {}
    result = accuracy_benchmark(
        images, segmenters(model, batch_size=config.batch_size), progress=say
    )
    result["model"] = description
    result["model_info"] = _model_summary(path) if model is not None else {}
    result["emps_split_seed"] = split_seed
    return result


def _model_summary(path: Path | None) -> dict[str, Any]:
    """Architecture, weights checksum and training status of a model file (empty: none)."""
    if path is None:
        return {}
    from antema_scale.segment.model_file import read_model_file, training_records

    metadata = read_model_file(path)["metadata"]
    epochs = [record.get("epochs_done") for record in training_records(metadata)]
    return {
        "file": path.name,
        "architecture": metadata.get("architecture"),
        "weights_sha256": metadata.get("weights_sha256"),
        "epochs_done": epochs[0] if len(epochs) == 1 else (epochs or None),
        "status": metadata.get("status"),
    }


def _model_split_seed(model: Any) -> int:
    """Seed of the train/val/test split the model was trained with (0 when not recorded)."""
    from antema_scale.segment.model_file import training_records

    records = training_records(model.metadata) if model is not None else []
    seeds = {int(r["split_seed"]) for r in records if r.get("split_seed") is not None}
    if len(seeds) > 1:  # an ensemble whose members saw different splits
        raise ValueError(
            f"the model's networks were trained on different splits (split seeds "
            f"{sorted(seeds)}): no test split is held out from all of them"
        )
    return seeds.pop() if seeds else 0


def run_benchmark(
    config: BenchConfig,
    *,
    command: str = "",
    progress: Progress | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark described by ``config`` and return its record (see :mod:`.report`).

    Parameters
    ----------
    config : BenchConfig
        What to measure.
    command : str
        The command line, recorded for reproduction.
    progress : callable, optional
        Called with a short message before each step.
    checkpoint : callable, optional
        Called with the record so far (``"complete": False``) after the speed part, so
        that a long run that is interrupted later still leaves its numbers.

    Returns
    -------
    dict
        ``format, name, started, total_seconds, command, config, fingerprint,
        load_average_start/end, speed, accuracy, notes``.
    """
    from antema_scale.benchmark.speed import load_average

    say = progress or (lambda message: None)
    notes = list(config.notes)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "name": config.name,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "config": dataclasses.asdict(config),
        "fingerprint": fingerprint(),
        "load_average_start": load_average(),
    }
    with tempfile.TemporaryDirectory(dir=config.workdir) as scratch:
        workdir = Path(scratch)
        record["complete"] = False
        if config.speed:
            record["speed"] = _speed(config, workdir, say, notes)
            if checkpoint is not None:
                checkpoint(
                    {
                        **record,
                        "notes": notes,
                        "load_average_end": load_average(),
                        "total_seconds": time.perf_counter() - started,
                    }
                )
        if config.accuracy:
            record["accuracy"] = _accuracy(config, say, notes)
    record["load_average_end"] = load_average()
    record["total_seconds"] = time.perf_counter() - started
    record["notes"] = notes
    record["complete"] = True
    return record
