"""Compare segmentation model files where pixel metrics are blind: touching particles.

A model that closes the thin gaps between touching particles can score well on pixel IoU
and still merge a raft of particles into a few blobs, which the particle analysis then
measures as a handful of huge "particles". This script runs each model file, plus the
threshold baseline, through the same path as ``antema-scale analyze`` (predict, then
``analyze_mask`` with default options) on

* the four built-in demo scenes (:func:`antema_scale.synth.demo_images`, exact truth):
  pixel IoU of the mask, particles found vs true particles that do not touch the border,
  and the median equivalent diameter found vs true (nm);
* the five real HAADF-STEM films in ``../shared/data/haadf-films`` (no labels): particles
  found, mask area fraction and median equivalent diameter (nm), to compare models with
  each other.

Run: ``python benchmarks/compare_models.py [MODEL.pt ...] [--json OUT]`` (default: the
shipped model). Writes ``benchmarks/results/compare_models.json`` unless ``--json`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "compare_models.json"
FILMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "haadf-films"


def particle_summary(mask: np.ndarray, pixel_size_nm: float) -> dict[str, float]:
    """Particles found by the default analysis in ``mask``: count and median ECD (nm)."""
    from antema_scale.particles import analyze_mask

    table = analyze_mask(mask, pixel_size_nm).particles
    diameters = table["equivalent_diameter_nm"] if len(table) else np.array([np.nan])
    return {
        "particles": int(len(table)),
        "median_ecd_nm": round(float(np.median(diameters)), 3),
        "area_fraction": round(float(mask.mean()), 4),
    }


def segmenters(models: list[str]) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """Name -> function(image, pixel size nm) -> mask, for each model file and the baseline."""
    from antema_scale.segment import load_model, predict, threshold_segment

    out: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {}
    for path in models:
        model = load_model(path, device="cpu")

        def segment(image: np.ndarray, size: float, model: Any = model) -> np.ndarray:
            return predict(model, [image], [size])[0].mask

        out[str(path)] = segment
    out["threshold"] = lambda image, size: threshold_segment(image, size).mask
    return out


def demo_rows(segment: Callable[[np.ndarray, float], np.ndarray]) -> dict[str, dict[str, Any]]:
    """Scores of one segmenter on the built-in demo scenes (exact truth)."""
    from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
    from antema_scale.synth import demo_images

    rows = {}
    for name, micrograph in demo_images(4):
        size = float(micrograph.pixel_size_nm)
        mask = segment(np.asarray(micrograph.image, dtype=np.float32), size)
        truth = micrograph.truth[~micrograph.truth["touches_border"].astype(bool)]
        found = particle_summary(mask, size)
        rows[name] = {
            "pixel_iou": round(
                pixel_metrics(confusion_matrix(micrograph.mask, mask))["iou_particle"], 4
            ),
            "true_particles": int(len(truth)),
            "found_over_true": round(found["particles"] / max(1, len(truth)), 3),
            "true_median_ecd_nm": round(float(truth["equivalent_diameter_nm"].median()), 3),
            **found,
        }
    return rows


def film_rows(segment: Callable[[np.ndarray, float], np.ndarray]) -> dict[str, dict[str, Any]]:
    """Particles found on the real HAADF films (no labels)."""
    from antema_scale.io import read_micrograph

    rows = {}
    for path in sorted(FILMS.glob("*.h5")):
        image = read_micrograph(path)
        size = float(image.attrs["pixel_size_nm"])
        rows[path.stem] = particle_summary(
            segment(np.asarray(image.values, dtype=np.float32), size), size
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model files (default: the shipped model)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    from antema_scale.segment import default_model_path

    torch.set_num_threads(2)
    models = args.models or [str(default_model_path())]
    results: dict[str, Any] = {
        "benchmark": "compare_models",
        "command": "python benchmarks/compare_models.py " + " ".join(args.models),
        "segmenters": {},
    }
    for name, segment in segmenters(models).items():
        results["segmenters"][name] = {
            "demo": demo_rows(segment),
            "haadf_films": film_rows(segment),
        }
        demo = results["segmenters"][name]["demo"]
        films = results["segmenters"][name]["haadf_films"]
        print(name)
        for scene, row in demo.items():
            print(
                f"  demo {scene:<22} IoU {row['pixel_iou']:.3f}  found {row['particles']:>4} / "
                f"true {row['true_particles']:>4}  median ECD {row['median_ecd_nm']:.2f} / "
                f"{row['true_median_ecd_nm']:.2f} nm"
            )
        for film, row in films.items():
            print(
                f"  film {film:<22} found {row['particles']:>4}  area {row['area_fraction']:.3f}  "
                f"median ECD {row['median_ecd_nm']:.2f} nm"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
