"""Where a segmenter fails: pixel metrics of ``antema-scale evaluate`` runs by subset.

Reads the ``per_image.csv`` of one or more evaluation folders and prints, per run, the
particle IoU and global accuracy (pixels summed over the images of each subset) for

* each source (``synth``, ``emps``, ...), all images and those the model did not flag
  out-of-distribution;
* synthetic images by imaging mode and overlap (parsed from ids ``synth-<mode>-<overlap>-<seed>``);
* synthetic images by their true mean particle diameter on the working grid of the
  shipped model (0.125-0.5 nm/px: ``diameter_truth_mean_nm / clip(pixel_size_nm, 0.125,
  0.5)``, the same bins for every segmenter): < 12, 12-24, 24-48, >= 48 px.

Run: ``python benchmarks/eval_breakdown.py runs/eval_a runs/eval_b [--markdown]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

DIAMETER_BINS_PX = (0.0, 12.0, 24.0, 48.0, np.inf)
WORKING_RANGE_NM = (0.125, 0.5)


def pixel_scores(rows: pd.DataFrame) -> dict[str, float]:
    """Particle IoU and global accuracy of the pixels of ``rows`` summed together."""
    tn, fp, fn, tp = (float(rows[name].sum()) for name in ("tn", "fp", "fn", "tp"))
    total = tn + fp + fn + tp
    union = tp + fp + fn
    return {
        "images": len(rows),
        "iou_particle": tp / union if union else float("nan"),
        "global_accuracy": (tp + tn) / total if total else float("nan"),
    }


def working_diameter_px(rows: pd.DataFrame) -> pd.Series:
    """True mean particle diameter in px of the working grid (before any refinement)."""
    working_pixel_nm = rows["pixel_size_nm"].clip(*WORKING_RANGE_NM)
    return rows["diameter_truth_mean_nm"] / working_pixel_nm


def subsets(per_image: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Named subsets of the images of one evaluation run."""
    out: dict[str, pd.DataFrame] = {}
    for source, rows in per_image.groupby("source", sort=True):
        out[f"{source}: all"] = rows
        if "quality_out_of_distribution" in rows:
            flagged = rows["quality_out_of_distribution"].astype(bool)
            out[f"{source}: not flagged"] = rows[~flagged]
    synth = per_image[per_image["source"] == "synth"]
    if synth.empty:
        return out
    parts = synth["image_id"].str.split("-", expand=True)
    for (mode, overlap), rows in synth.groupby([parts[1], parts[2]], sort=True):
        out[f"synth {mode}, {overlap} overlap"] = rows
    diameters = working_diameter_px(synth)
    for low, high in zip(DIAMETER_BINS_PX[:-1], DIAMETER_BINS_PX[1:], strict=True):
        label = (
            f"synth diameter {low:g}-{high:g} px"
            if np.isfinite(high)
            else f"synth diameter >= {low:g} px"
        )
        out[label] = synth[(diameters >= low) & (diameters < high)]
    return out


def breakdown(folders: list[Path]) -> pd.DataFrame:
    """One row per subset, one IoU (accuracy) column per evaluation folder."""
    columns: dict[str, dict[str, str]] = {}
    counts: dict[str, int] = {}
    for folder in folders:
        per_image = pd.read_csv(folder / "per_image.csv")
        column = {}
        for name, rows in subsets(per_image).items():
            scores = pixel_scores(rows)
            counts.setdefault(name, scores["images"])
            column[name] = f"{scores['iou_particle']:.3f} ({scores['global_accuracy']:.3f})"
        columns[folder.name] = column
    table = pd.DataFrame(columns)
    table.insert(0, "images", pd.Series(counts))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders", nargs="+", type=Path, help="antema-scale evaluate output folders"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    table = breakdown(args.folders)
    print("particle IoU (global accuracy), pixels summed per subset")
    print(table.to_markdown() if args.markdown else table.to_string())


if __name__ == "__main__":
    main()
