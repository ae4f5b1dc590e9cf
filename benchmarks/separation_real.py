"""Separation accuracy on real labelled micrographs (EMPS instance label maps).

The EMPS training split beside the checkout (``../shared/data/emps-train/segmaps/*.png``,
uint16 instance maps, 0 = background) gives real particle outlines, including touching
and agglomerated particles. For each image the union of all instances is analysed as a
binary mask with every separation mode; a true instance (not touching the border) is
*found* when a reported particle overlaps it with IoU >= 0.5 (each particle matched once).
EMPS has no pixel size, so a nominal 1 nm/px is used (cleaning thresholds of 0.5 nm are
then below one pixel and remove nothing).

Run: ``nice -n 10 python benchmarks/separation_real.py [--limit 120]``; writes
``benchmarks/results/separation_real.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from antema_scale.particles import AnalysisOptions, analyze_mask

MODES: dict[str, AnalysisOptions] = {
    "hybrid (default)": AnalysisOptions(),
    "uecs": AnalysisOptions(separation="uecs"),
    "uecs-paper": AnalysisOptions.paper(),
    "watershed": AnalysisOptions(separation="watershed"),
    "none": AnalysisOptions(separation="none"),
}
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "emps-train" / "segmaps"


def match(instances: np.ndarray, table) -> tuple[int, int, int]:
    """``(true, reported, matched)`` with IoU >= 0.5 on bounding-box crops."""
    ids = [i for i in np.unique(instances) if i != 0]
    border = set(
        np.unique(np.concatenate([instances[0], instances[-1], instances[:, 0], instances[:, -1]]))
    )
    truth = [i for i in ids if i not in border]
    used: set[int] = set()
    matched = 0
    for i in truth:
        true_mask = instances == i
        best, best_iou = None, 0.5
        for k, crop in enumerate(table.masks):
            if k in used:
                continue
            r, c = crop.offset
            h, w = crop.mask.shape
            inter = (true_mask[r : r + h, c : c + w] & crop.mask).sum()
            if inter == 0:
                continue
            iou = inter / (true_mask.sum() + crop.mask.sum() - inter)
            if iou >= best_iou:
                best, best_iou = k, iou
        if best is not None:
            used.add(best)
            matched += 1
    return len(truth), len(table.masks), matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmaps", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "separation_real.json"
    )
    args = parser.parse_args()
    files = sorted(args.segmaps.glob("*.png"))[: args.limit]
    if not files:
        raise SystemExit(f"no label maps under {args.segmaps}")
    totals = {mode: {"true": 0, "reported": 0, "matched": 0, "seconds": 0.0} for mode in MODES}
    for path in files:
        instances = np.array(Image.open(path))
        union = instances > 0
        for mode, options in MODES.items():
            start = time.perf_counter()
            table = analyze_mask(union, 1.0, options=options, image_id=path.stem)
            totals[mode]["seconds"] += time.perf_counter() - start
            true, reported, matched = match(instances, table)
            totals[mode]["true"] += true
            totals[mode]["reported"] += reported
            totals[mode]["matched"] += matched
    print(
        f"{len(files)} EMPS label maps, {totals['none']['true']} instances not touching the border"
    )
    print("| mode | recall | precision | F1 | s/image |")
    print("|---|---|---|---|---|")
    rows = []
    for mode, t in totals.items():
        recall = t["matched"] / t["true"]
        precision = t["matched"] / t["reported"] if t["reported"] else 0.0
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        rows.append({"mode": mode, "recall": recall, "precision": precision, "f1": f1, **t})
        print(
            f"| {mode} | {recall:.3f} | {precision:.3f} | {f1:.3f} | {t['seconds'] / len(files):.3f} |"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"images": len(files), "modes": rows}, indent=2))


if __name__ == "__main__":
    main()
