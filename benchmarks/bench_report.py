"""Report statistics speed: bootstrap of the median, drawn vs resampled, and a whole summary.

Measured side by side in one run on the same lognormal "diameters":

1. the bootstrap distribution of the median, 2000 resamples, by brute force (an index
   matrix per block and ``np.median`` per resample) and by drawing the resample medians
   from their exact order-statistic distribution
   (:func:`antema_scale.report.statistics.bootstrap_medians`), at 1 000, 10 000 and
   100 000 particles; the 2.5/97.5 % bounds of both are printed so that agreement can be
   seen next to the speed-up;
2. :func:`antema_scale.report.summary_statistics` of a whole particle table (six
   quantities, 2000 resamples) at the same sizes.

Each measurement is the median of ``--repeat`` runs; the JSON records the machine and its
load average, since on a shared machine absolute times vary several-fold between runs.

Usage::

    python benchmarks/bench_report.py [--repeat 3] [--json benchmarks/results/bench_report.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from antema_scale.provenance import hardware_fingerprint
from antema_scale.report import summary_statistics
from antema_scale.report.statistics import bootstrap_medians

N_RESAMPLES = 2000
BLOCK_VALUES = 4_000_000


def brute_force_medians(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Resample medians the textbook way: draw every resample, take its median."""
    n = values.size
    medians = np.empty(n_resamples)
    block = max(1, BLOCK_VALUES // n)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        medians[start:stop] = np.median(
            values[rng.integers(0, n, size=(stop - start, n), dtype=np.int32)], axis=1
        )
    return medians


def timed(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time (s) of ``repeat`` calls and the last result."""
    times = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def particle_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic particle table with the summarised columns (lengths in nm)."""
    rng = np.random.default_rng(seed)
    diameter = rng.lognormal(np.log(10.0), 0.2, n)
    return pd.DataFrame(
        {
            "equivalent_diameter_nm": diameter,
            "min_feret_nm": diameter * rng.uniform(0.85, 1.0, n),
            "max_feret_nm": diameter * rng.uniform(1.0, 1.3, n),
            "area_nm2": np.pi * diameter**2 / 4,
            "circularity": rng.uniform(0.8, 1.0, n),
            "aspect_ratio": rng.uniform(1.0, 1.5, n),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for n in (1_000, 10_000, 100_000):
        values = np.sort(particle_table(n)["equivalent_diameter_nm"].to_numpy())
        brute_s, brute = timed(
            lambda v=values: brute_force_medians(v, N_RESAMPLES, np.random.default_rng(1)),
            args.repeat,
        )
        drawn_s, drawn = timed(
            lambda v=values: bootstrap_medians(v, N_RESAMPLES, np.random.default_rng(2)),
            args.repeat,
        )
        table = particle_table(n)
        summary_s, _ = timed(
            lambda t=table: summary_statistics(t, n_resamples=N_RESAMPLES), args.repeat
        )
        row = {
            "particles": n,
            "median_bootstrap_brute_s": round(brute_s, 4),
            "median_bootstrap_drawn_s": round(drawn_s, 5),
            "speedup": round(brute_s / drawn_s, 1),
            "brute_ci_nm": [round(float(q), 4) for q in np.percentile(brute, [2.5, 97.5])],
            "drawn_ci_nm": [round(float(q), 4) for q in np.percentile(drawn, [2.5, 97.5])],
            "summary_statistics_s": round(summary_s, 3),
        }
        rows.append(row)
        print(json.dumps(row))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "n_resamples": N_RESAMPLES,
            "repeat": args.repeat,
            "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],
            "hardware": hardware_fingerprint(),
            "rows": rows,
        }
        args.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
