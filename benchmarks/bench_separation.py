"""Benchmark: particle post-processing of a 1024² mask, package vs full-frame baseline.

A 1024² mask at 0.5 nm/px holds ~300 discs (radius 7-13 px), 20 % of them in overlapping
clusters (pairs, chains of three, triangles; linear overlap 10-40 %). Both
``antema_scale.particles.analyze_mask`` (default ``hybrid`` and ``uecs-paper``) and the
full-frame port of the reference program (``reference_fullframe.py``) run on the same
masks, one after the other in this process, on one core (``OMP_NUM_THREADS=1`` etc. are
set before numpy is imported). Reports median wall times, the speed-up, and how many
particles each found against the truth. Wall and CPU (``process_time``) seconds are both
reported: on a shared, loaded machine the CPU time estimates the time on an idle core.

Run: ``nice -n 10 python benchmarks/bench_separation.py [--repeats 3] [--seeds 0 1]``
Writes ``benchmarks/results/bench_separation.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from skimage.draw import disk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_fullframe import reference_analyze  # noqa: E402

from antema_scale.particles import AnalysisOptions, analyze_mask  # noqa: E402

PIXEL_SIZE_NM = 0.5
SHAPE = (1024, 1024)


def _cluster_offsets(kind: str, radius: float, overlap: float, rng: np.random.Generator) -> list:
    d = 2 * radius * (1 - overlap)
    angle = rng.uniform(0, math.pi)
    direction = np.array([math.sin(angle), math.cos(angle)])
    if kind == "pair":
        return [np.zeros(2), d * direction]
    if kind == "chain":
        bend = rng.uniform(-0.4, 0.4)
        second = np.array([math.sin(angle + bend), math.cos(angle + bend)])
        return [np.zeros(2), d * direction, d * direction + d * second]
    turn = np.array([math.sin(angle + math.pi / 3), math.cos(angle + math.pi / 3)])
    return [np.zeros(2), d * direction, d * turn]


def make_scene(seed: int, n_particles: int = 300, cluster_fraction: float = 0.2) -> tuple:
    """Draw the benchmark mask; returns ``(mask, true_count, groups)``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    occupied: list[tuple[np.ndarray, float]] = []
    groups: list[list[tuple[np.ndarray, float]]] = []
    in_clusters = 0
    target_clustered = int(round(cluster_fraction * n_particles))
    kinds = ["pair", "chain", "triangle"]
    while in_clusters < target_clustered:
        kind = kinds[len(groups) % 3]
        radius = rng.uniform(7, 13)
        offsets = _cluster_offsets(kind, radius, rng.uniform(0.1, 0.4), rng)
        groups.append([(o, radius) for o in offsets])
        in_clusters += len(offsets)
    groups += [[(np.zeros(2), rng.uniform(7, 13))] for _ in range(n_particles - in_clusters)]
    placed = 0
    for group in groups:
        extent = max(np.linalg.norm(o) + r for o, r in group)
        for _ in range(1000):
            centre = rng.uniform(extent + 4, np.array(SHAPE) - extent - 4)
            if all(np.linalg.norm(centre - c) > extent + e + 3 for c, e in occupied):
                break
        else:
            continue
        occupied.append((centre, extent))
        for offset, radius in group:
            rr, cc = disk(tuple(centre + offset), radius, shape=SHAPE)
            mask[rr, cc] = True
            placed += 1
    return mask, placed


def _time(function, repeats: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time (``time.process_time``) of ``function``.

    On a shared machine the CPU time is the better estimate of the time on an idle core.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "bench_separation.json"
    )
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        mask, truth = make_scene(seed)
        t_default, c_default, table = _time(
            lambda m=mask: analyze_mask(m, PIXEL_SIZE_NM), args.repeats
        )
        t_paper, c_paper, paper = _time(
            lambda m=mask: analyze_mask(m, PIXEL_SIZE_NM, options=AnalysisOptions.paper()),
            args.repeats,
        )
        t_reference, c_reference, reference = _time(
            lambda m=mask: reference_analyze(m, PIXEL_SIZE_NM), args.reference_repeats
        )
        row = {
            "seed": seed,
            "true_particles": truth,
            "analyze_mask_default_s": round(t_default, 4),
            "analyze_mask_uecs_paper_s": round(t_paper, 4),
            "reference_fullframe_s": round(t_reference, 4),
            "analyze_mask_default_cpu_s": round(c_default, 4),
            "analyze_mask_uecs_paper_cpu_s": round(c_paper, 4),
            "reference_fullframe_cpu_s": round(c_reference, 4),
            "speedup_uecs_paper_vs_reference": round(t_reference / t_paper, 1),
            "speedup_default_vs_reference": round(t_reference / t_default, 1),
            "cpu_speedup_default_vs_reference": round(c_reference / c_default, 1),
            "found_default": len(table),
            "found_uecs_paper": len(paper),
            "found_reference": len(reference),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
        rows.append(row)
        print(json.dumps(row))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        from antema_scale.provenance import git_revision, hardware_fingerprint

        provenance = {"git": git_revision(), "hardware": hardware_fingerprint()}
    except Exception as error:  # provenance is optional for the numbers themselves
        provenance = {"error": repr(error)}
    args.output.write_text(
        json.dumps({"runs": rows, "provenance": provenance}, indent=2, default=str)
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
