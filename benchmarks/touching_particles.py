"""Touching particles on many held-out dense scenes: which model keeps neighbours apart.

``compare_models.py`` scores one dense HAADF raft (the demo scene ``haadf_film``); a model
can suit that one scene by chance. This benchmark draws ``--scenes`` held-out scenes of
touching particles per family, on seeds that no training or validation run uses (from
:data:`TOUCHING_SEED_BASE`; the synthetic splits use 1,000,000-3,999,999, validation rafts
4,000,000+, training rafts 5,000,000+):

* ``haadf-rafts``: the ``haadf-film`` family of :mod:`antema_scale.synth.presets`
  (close-packed 5-14 nm particles, HAADF, 0.15-0.6 nm/px), as ``train --raft-validation``
  draws them;
* ``bf-agglomerates``: the looks of the ``colloid-tem`` family (bright field, particles of
  many shapes, defocus fringes, 0.1-2 nm/px), 8-40 px across, in clusters or rafts at
  25-45 % coverage, with 30 % of them placed against a neighbour (overlap ``medium``).

Every model file runs through the path of ``antema-scale analyze`` (default inference,
default analysis) and is scored by :mod:`antema_scale.benchmark.accuracy` against the
exact instances: pixel IoU, instance precision / recall / F1 of the measured particles
(IoU >= 0.5), the split fraction of touching pairs (both particles matched) and the error
of the mean equivalent diameter. Every model after the first is also compared with the
first scene by scene: mean difference of instance F1 and pixel IoU, with its standard
error, and how many scenes got better / worse.

Run: ``python benchmarks/touching_particles.py [MODEL.pt ...] [--scenes 24] [--json OUT]``
(default: the shipped model; about 1 min per model for 2 x 24 scenes of 512² on 2 cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "touching_particles.json"
#: First seed of the held-out scenes (disjoint from every split and raft set of ``train``).
TOUCHING_SEED_BASE = 6_000_000
FAMILIES = ("haadf-rafts", "bf-agglomerates")


def touching_scenes(family: str, n: int, size: int = 512) -> list[Any]:
    """``n`` held-out scenes of touching particles of one family, with exact instances.

    Parameters
    ----------
    family : str
        ``"haadf-rafts"`` or ``"bf-agglomerates"`` (see the module docstring).
    n : int
        Number of scenes; scene ``i`` uses seed ``TOUCHING_SEED_BASE + i`` (the two
        families draw their configurations on different streams).
    size : int
        Image side, px.

    Returns
    -------
    list of antema_scale.benchmark.accuracy.TruthImage
        ``group`` is the scene's own id, so that results come per scene.
    """
    from antema_scale.benchmark.accuracy import TruthImage
    from antema_scale.segment.datasets import dense_raft_micrograph
    from antema_scale.synth import generate_micrograph
    from antema_scale.synth.presets import preset_config

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")
    scenes = []
    for seed in range(TOUCHING_SEED_BASE, TOUCHING_SEED_BASE + n):
        if family == "haadf-rafts":
            micrograph = dense_raft_micrograph(seed, (size, size))
        else:
            rng = np.random.default_rng([seed, 17])
            config = preset_config("colloid-tem", rng, size)
            config = config.with_(
                diameter_mean_nm=float(rng.uniform(8.0, 40.0)) * config.pixel_size_nm,
                arrangement=str(rng.choice(["clustered", "rafts"])),
                area_fraction=float(rng.uniform(0.25, 0.45)),
                overlap="medium",
            )
            micrograph = generate_micrograph(config, seed)
        scene_id = f"{family}-{seed}"
        scenes.append(TruthImage.from_micrograph(micrograph, scene_id, scene_id))
    return scenes


def pooled(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Scores of a family pooled over its scenes (one row per scene, default analysis)."""
    n_truth = sum(r["n_truth"] for r in rows)
    n_predicted = sum(r["n_predicted"] for r in rows)
    n_matched = sum(r["n_matched"] for r in rows)
    n_pairs = sum(r["n_pairs"] for r in rows)
    truth_mean = sum(r["diameter_truth_mean_nm"] * r["n_truth"] for r in rows) / max(1, n_truth)
    predicted = [r for r in rows if r["n_predicted"]]
    predicted_mean = sum(r["diameter_predicted_mean_nm"] * r["n_predicted"] for r in predicted)
    predicted_mean /= max(1, n_predicted)
    return {
        "scenes": len(rows),
        "pixel_iou_mean": float(np.mean([r["pixel_iou"] for r in rows])),
        "n_truth": n_truth,
        "n_predicted": n_predicted,
        "precision": n_matched / max(1, n_predicted),
        "recall": n_matched / max(1, n_truth),
        "f1": 2 * n_matched / max(1, n_truth + n_predicted),
        "split_fraction": sum(r["n_pairs_split"] for r in rows) / max(1, n_pairs),
        "ecd_mean_relative_error": (predicted_mean - truth_mean) / truth_mean,
    }


def paired(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, float]:
    """Scene-by-scene differences (this model − reference) of instance F1 and pixel IoU."""
    out: dict[str, float] = {}
    for key in ("f1", "pixel_iou"):
        diff = np.array([r[key] - q[key] for r, q in zip(rows, reference, strict=True)])
        out[f"{key}_diff_mean"] = float(diff.mean())
        out[f"{key}_diff_se"] = (
            float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
        )
        out[f"{key}_better"] = int((diff > 0).sum())
        out[f"{key}_worse"] = int((diff < 0).sum())
    return out


def scene_rows(result: dict[str, Any], segmenter: str) -> dict[str, dict[str, Any]]:
    """Per-scene rows of one segmenter from an :func:`accuracy_benchmark` result."""
    pixel = {r["group"]: r for r in result["pixel"] if r["segmenter"] == segmenter}
    rows = {}
    for row in result["particles"]:
        if row["segmenter"] == segmenter:  # the true masks have no pixel rows: IoU 1
            iou = pixel[row["group"]]["iou_particle"] if pixel else 1.0
            rows[row["group"]] = {**row, "pixel_iou": iou}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="model files (default: the shipped model)")
    parser.add_argument("--scenes", type=int, default=24, help="scenes per family")
    parser.add_argument("--size", type=int, default=512, help="scene side, px")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.scenes < 2:
        parser.error("--scenes must be at least 2 (paired differences need a spread)")

    import torch

    from antema_scale.benchmark.accuracy import accuracy_benchmark
    from antema_scale.particles import AnalysisOptions
    from antema_scale.segment import default_model_path, load_model
    from antema_scale.segment.evaluate import network_segmenter

    torch.set_num_threads(args.threads)
    models = args.models or [str(default_model_path())]
    scenes = {family: touching_scenes(family, args.scenes, args.size) for family in FAMILIES}
    every_scene = [scene for family in FAMILIES for scene in scenes[family]]
    modes = {"default": AnalysisOptions()}
    per_scene: dict[str, dict[str, dict[str, Any]]] = {}
    for index, path in enumerate(models):
        segment = network_segmenter(load_model(path, device="cpu"))
        result = accuracy_benchmark(
            every_scene, {path: segment}, modes=modes, include_truth_masks=index == 0
        )
        per_scene[path] = scene_rows(result, path)
        if index == 0:
            per_scene = {"true masks": scene_rows(result, "truth"), **per_scene}
    results: dict[str, Any] = {
        "benchmark": "touching_particles",
        "command": "python benchmarks/touching_particles.py "
        + " ".join([*args.models, f"--scenes {args.scenes}", f"--size {args.size}"]),
        "seed_base": TOUCHING_SEED_BASE,
        "families": {},
    }
    reference = models[0]
    for family in FAMILIES:
        ids = [scene.image_id for scene in scenes[family]]
        table: dict[str, Any] = {}
        print(f"{family} ({len(ids)} scenes of {args.size}² px)")
        for name, rows_by_id in per_scene.items():
            rows = [rows_by_id[i] for i in ids]
            table[name] = pooled(rows)
            if name not in ("true masks", reference):
                table[name]["against_first"] = paired(rows, [per_scene[reference][i] for i in ids])
            s = table[name]
            line = (
                f"  {name:<48} IoU {s['pixel_iou_mean']:.3f}  F1 {s['f1']:.3f} "
                f"(P {s['precision']:.3f} R {s['recall']:.3f})  split {s['split_fraction']:.3f}"
                f"  ECD {s['ecd_mean_relative_error']:+.3%}"
            )
            if "against_first" in s:
                d = s["against_first"]
                line += (
                    f"  | vs first: F1 {d['f1_diff_mean']:+.4f} ± {d['f1_diff_se']:.4f} "
                    f"({d['f1_better']}+/{d['f1_worse']}-), IoU {d['pixel_iou_diff_mean']:+.4f}"
                    f" ± {d['pixel_iou_diff_se']:.4f}"
                )
            print(line)
        results["families"][family] = table
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
