"""Particle-level effect of the speck filter (``min_particle_diameter_nm``) on EMPS val.

The shipped model marks many small bright grains that the EMPS labels skip. This runs the
model on the EMPS *validation* images and analyses the masks with the paper's 0.5 nm speck
filter and with 1.0 / 1.5 nm, printing instance precision / recall / F1 (IoU >= 0.5) and
the diameter errors (EMPS in nominal nm at 0.25 nm/px, so 1.5 nm = 6 px).

Run: ``python benchmarks/speck_filter_val.py [--emps ../shared/data/emps-train]``
(about 1 min on 2 cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EMPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emps-train"
SPECK_DIAMETERS_NM = (0.5, 1.0, 1.5)
SHOWN = ("n_predicted", "n_matched", "precision", "recall", "f1", "diameter_mean_error_nm")


def main() -> None:
    import torch

    from antema_scale.benchmark.accuracy import accuracy_benchmark, emps_truth, segmenters
    from antema_scale.particles import AnalysisOptions
    from antema_scale.segment import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emps", type=Path, default=EMPS, help="EMPS folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = emps_truth(args.emps, split="val")
    model = load_model(device="cpu")
    modes = {
        f"min {d:g} nm": AnalysisOptions(min_particle_diameter_nm=d) for d in SPECK_DIAMETERS_NM
    }
    result = accuracy_benchmark(
        images, {"model": segmenters(model)["model"]}, modes=modes, include_truth_masks=False
    )
    for row in result["particles"]:
        values = ", ".join(
            f"{k} {row[k]:.3f}" if isinstance(row[k], float) else f"{k} {row[k]}" for k in SHOWN
        )
        print(f"{row['mode']:>10} {row['group']}: {values}")


if __name__ == "__main__":
    main()
