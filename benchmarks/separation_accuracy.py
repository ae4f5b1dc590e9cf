"""Accuracy of the separation modes against drawn truth (pairs, chains, triangles, clusters).

Every scene is one group of equal-size discs on its own small mask: isolated discs, pairs
at a linear overlap of 10/25/40 % (centre distance ``(1 - o) * 2r``), bent chains of 3
and 4 at 10-40 %, triangles at 15/30 %, random clusters of 4-6 discs (each new disc
overlaps a random earlier one by 10-40 %), at two disc diameters and two pixel sizes.
A true disc is *found* when a reported particle covers it with IoU >= 0.7 (each particle
matched at most once). Reported per scene kind and mode: recall (found / true),
precision (matched particles / reported particles) and the mean absolute error of the
equivalent diameter of found discs.

Run: ``nice -n 10 python benchmarks/separation_accuracy.py [--repeats 6]``; writes
``benchmarks/results/separation_accuracy.json`` and prints a markdown table.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
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
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
