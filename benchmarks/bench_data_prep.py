"""Training-data preparation: one process vs several, side by side in one run.

Generates and prepares the first N synthetic training images of a ``--synthetic``
config (as ``antema-scale train`` does before its first epoch) with
:func:`antema_scale.segment.train.prepare_loaded` at ``workers=1`` and at each
``--workers`` value, checks that the prepared images are identical, and prints seconds
and images/s with the ratio to one process.

Run: ``python benchmarks/bench_data_prep.py --images 40 --workers 2``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from antema_scale.segment.preprocess import Preprocessing
from antema_scale.segment.train import TrainConfig, prepare_loaded, split_loaders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    args = parser.parse_args()
    loaders = split_loaders(TrainConfig(synthetic_images=1500), "train")[: args.images]
    pre = Preprocessing((0.125, 0.5), 1.0)
    results = {}
    for workers in [1, *args.workers]:
        start = time.perf_counter()
        prepared = list(prepare_loaded(loaders, pre, workers=workers))
        results[workers] = (time.perf_counter() - start, prepared)
    base_seconds, base = results[1]
    for workers, (seconds, prepared) in results.items():
        same = all(np.array_equal(a.image, b.image) for a, b in zip(base, prepared, strict=True))
        print(
            f"workers {workers}: {seconds:6.1f} s  {len(prepared) / seconds:5.2f} img/s  "
            f"x{base_seconds / seconds:.2f}  identical to 1 worker: {same}"
        )


if __name__ == "__main__":
    main()
