"""Accuracy of the separation modes against drawn truth (pairs, chains, triangles, clusters).

Every scene is one group of equal-size discs on its own small mask: isolated discs, pairs
at a linear overlap of 10/25/40 % (centre distance ``(1 - o) * 2r``), bent chains of 3
and 4 at 10-40 %, triangles at 15/30 %, random clusters of 4-6 discs (each new disc
overlaps a random earlier one by 10-40 %), at two disc diameters and two pixel sizes.
A true disc is *found* when a reported particle covers it with IoU >= 0.7 (each particle
matched at most once). Reported per scene kind and mode: recall (found / true),
precision (matched particles / reported particles) and the mean absolute error of the
equivalent diameter of found discs.

With ``--synth-images N`` it also scores the modes on the exact union masks of ``N``
random micrographs from ``antema_scale.synth`` per overlap level "medium" and "high"
(mixed shapes and sizes; truth particles touching the border are ignored; IoU >= 0.5).

Run: ``nice -n 10 python benchmarks/separation_accuracy.py [--repeats 6]
[--synth-images 12]``; writes ``benchmarks/results/separation_accuracy.json`` and prints
markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from antema_scale.particles import AnalysisOptions, analyze_mask

MODES: dict[str, AnalysisOptions] = {
    "hybrid": AnalysisOptions(separation="hybrid"),
    "uecs": AnalysisOptions(separation="uecs"),
    "uecs-paper": AnalysisOptions.paper(),
    "watershed": AnalysisOptions(separation="watershed"),
    "none": AnalysisOptions(separation="none"),
}


def _chain(count: int, distance: float, rng: np.random.Generator) -> list[np.ndarray]:
    angle = rng.uniform(0, math.pi)
    centres = [np.zeros(2)]
    for _ in range(count - 1):
        angle += rng.uniform(-0.5, 0.5)
        centres.append(centres[-1] + distance * np.array([math.sin(angle), math.cos(angle)]))
    return centres


def _cluster(count: int, radius: float, rng: np.random.Generator) -> list[np.ndarray]:
    centres = [np.zeros(2)]
    while len(centres) < count:
        anchor = centres[rng.integers(len(centres))]
        distance = 2 * radius * (1 - rng.uniform(0.1, 0.4))
        angle = rng.uniform(0, 2 * math.pi)
        candidate = anchor + distance * np.array([math.sin(angle), math.cos(angle)])
        if all(np.linalg.norm(candidate - c) >= 2 * radius * 0.6 for c in centres):
            centres.append(candidate)
    return centres


def scene_centres(kind: str, radius: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Disc centres (px) of one scene kind."""
    if kind == "isolated":
        return [np.zeros(2)]
    if kind.startswith("pair"):
        overlap = int(kind.split("-")[1]) / 100
        return _chain(2, 2 * radius * (1 - overlap), rng)
    if kind.startswith("chain"):
        return _chain(int(kind[-1]), 2 * radius * (1 - rng.uniform(0.1, 0.4)), rng)
    if kind.startswith("triangle"):
        overlap = int(kind.split("-")[1]) / 100
        d = 2 * radius * (1 - overlap)
        angle = rng.uniform(0, math.pi)
        return [
            d
            * np.array(
                [math.sin(angle + k * 2 * math.pi / 3), math.cos(angle + k * 2 * math.pi / 3)]
            )
            / math.sqrt(3)
            for k in range(3)
        ]
    return _cluster(int(rng.integers(4, 7)), radius, rng)


def draw(centres: list[np.ndarray], radius: float, margin: int = 6) -> tuple[np.ndarray, list]:
    """Rasterise discs (pixel centres inside), returning the union and each disc's mask."""
    pts = np.array(centres)
    pts = pts - pts.min(axis=0) + radius + margin + 0.37
    shape = tuple(int(v) for v in np.ceil(pts.max(axis=0) + radius + margin))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    discs = [(yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= radius**2 for c in pts]
    return np.logical_or.reduce(discs), discs


def score(table, discs: list[np.ndarray], shape: tuple[int, int], spacing: float) -> dict:
    """Match particles to true discs by IoU >= 0.7."""
    found = [crop.paste(shape) for crop in table.masks]
    used: set[int] = set()
    errors = []
    for disc in discs:
        best, best_iou = None, 0.0
        for k, particle in enumerate(found):
            if k in used:
                continue
            iou = (disc & particle).sum() / (disc | particle).sum()
            if iou > best_iou:
                best, best_iou = k, iou
        if best is not None and best_iou >= 0.7:
            used.add(best)
            true_d = 2 * math.sqrt(disc.sum() / math.pi) * spacing
            measured = table.particles.equivalent_diameter_nm.iloc[best]
            errors.append(abs(measured - true_d) / true_d)
    return {"true": len(discs), "reported": len(found), "matched": len(used), "errors": errors}


KINDS = (
    "isolated",
    "pair-10",
    "pair-25",
    "pair-40",
    "chain3",
    "chain4",
    "triangle-15",
    "triangle-30",
    "cluster",
)


def _crop_iou(a_mask: np.ndarray, a_off: tuple, b_mask: np.ndarray, b_off: tuple) -> float:
    """IoU of two offset crops, computed on their union bounding box."""
    r0, c0 = min(a_off[0], b_off[0]), min(a_off[1], b_off[1])
    r1 = max(a_off[0] + a_mask.shape[0], b_off[0] + b_mask.shape[0])
    c1 = max(a_off[1] + a_mask.shape[1], b_off[1] + b_mask.shape[1])
    canvas = np.zeros((2, r1 - r0, c1 - c0), dtype=bool)
    for k, (mask, (r, c)) in enumerate(((a_mask, a_off), (b_mask, b_off))):
        canvas[k, r - r0 : r - r0 + mask.shape[0], c - c0 : c - c0 + mask.shape[1]] = mask
    union = (canvas[0] | canvas[1]).sum()
    return float((canvas[0] & canvas[1]).sum() / union) if union else 0.0


def synth_scores(n_images: int, level: str, seed: int = 7) -> list[dict]:
    """Recall / precision of every mode on the truth masks of synthetic micrographs."""
    from antema_scale.synth import generate_micrograph, random_config

    rng = np.random.default_rng(seed)
    totals = {mode: {"true": 0, "reported": 0, "matched": 0} for mode in MODES}
    for k in range(n_images):
        micrograph = generate_micrograph(random_config(rng, overlap=level), seed + k)
        shape = micrograph.mask.shape
        truth = [
            (crop.mask, tuple(crop.offset))
            for crop in micrograph.particles
            if crop.offset[0] > 0
            and crop.offset[1] > 0
            and crop.offset[0] + crop.mask.shape[0] < shape[0]
            and crop.offset[1] + crop.mask.shape[1] < shape[1]
        ]
        for mode, options in MODES.items():
            table = analyze_mask(micrograph.mask, micrograph.pixel_size_nm, options=options)
            boxes = np.array(
                [
                    [*c.offset, c.offset[0] + c.mask.shape[0], c.offset[1] + c.mask.shape[1]]
                    for c in table.masks
                ]
            ).reshape(-1, 4)
            used: set[int] = set()
            for mask, (r, c) in truth:
                near = np.flatnonzero(
                    (boxes[:, 0] < r + mask.shape[0])
                    & (boxes[:, 2] > r)
                    & (boxes[:, 1] < c + mask.shape[1])
                    & (boxes[:, 3] > c)
                )
                best, best_iou = None, 0.5
                for j in near:
                    if j in used:
                        continue
                    crop = table.masks[j]
                    iou = _crop_iou(mask, (r, c), crop.mask, crop.offset)
                    if iou >= best_iou:
                        best, best_iou = int(j), iou
                if best is not None:
                    used.add(best)
            totals[mode]["true"] += len(truth)
            totals[mode]["reported"] += len(table.masks)
            totals[mode]["matched"] += len(used)
    rows = []
    print(
        f"\n{n_images} synthetic micrographs (overlap {level!r}), {totals['none']['true']} particles"
    )
    print("| mode | recall | precision |")
    print("|---|---|---|")
    for mode, t in totals.items():
        recall = t["matched"] / max(t["true"], 1)
        precision = t["matched"] / max(t["reported"], 1)
        rows.append({"level": level, "mode": mode, "recall": recall, "precision": precision, **t})
        print(f"| {mode} | {recall:.3f} | {precision:.3f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--synth-images", type=int, default=0)
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(__file__).parent / "results" / "separation_accuracy.json",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    totals: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"true": 0, "reported": 0, "matched": 0, "errors": []}
    )
    for kind in KINDS:
        for diameter_nm in (5.0, 10.0):
            for spacing in (0.1, 0.25):
                radius = diameter_nm / 2 / spacing
                for _ in range(args.repeats):
                    union, discs = draw(scene_centres(kind, radius, rng), radius)
                    for mode, options in MODES.items():
                        result = score(
                            analyze_mask(union, spacing, options=options),
                            discs,
                            union.shape,
                            spacing,
                        )
                        total = totals[(kind, mode)]
                        for key in ("true", "reported", "matched"):
                            total[key] += result[key]
                        total["errors"] += result["errors"]
    rows = []
    for (kind, mode), total in totals.items():
        rows.append(
            {
                "kind": kind,
                "mode": mode,
                "recall": round(total["matched"] / total["true"], 3),
                "precision": round(total["matched"] / total["reported"], 3)
                if total["reported"]
                else None,
                "mean_abs_diameter_error": round(float(np.mean(total["errors"])), 4)
                if total["errors"]
                else None,
                "true": total["true"],
            }
        )
    print("| scene | " + " | ".join(MODES) + " |")
    print("|---|" + "---|" * len(MODES))
    for kind in KINDS:
        cells = []
        for mode in MODES:
            row = next(r for r in rows if r["kind"] == kind and r["mode"] == mode)
            error = row["mean_abs_diameter_error"]
            cells.append(
                f"{row['recall']:.2f} / {row['precision'] if row['precision'] is not None else float('nan'):.2f}"
                + (f" / {100 * error:.1f}%" if error is not None else " / -")
            )
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("cells: recall / precision / mean |error| of equivalent diameter (found discs)")
    synth_rows = [
        row
        for level in ("medium", "high")
        for row in (synth_scores(args.synth_images, level) if args.synth_images else [])
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"drawn": rows, "synth": synth_rows}, indent=2))


if __name__ == "__main__":
    main()
