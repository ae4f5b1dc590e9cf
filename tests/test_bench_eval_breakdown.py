"""Tests of ``benchmarks/eval_breakdown.py`` on a hand-made ``per_image.csv``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def breakdown() -> ModuleType:
    return load_benchmark("eval_breakdown")


def _run(folder: Path) -> Path:
    folder.mkdir()
    rows = [
        # id, pixel nm, true mean diameter nm, tn, fp, fn, tp, flagged
        ("synth-hrtem-low-1", 0.05, 1.0, 80, 5, 5, 10, True),  # 1 nm at 0.125 nm/px: 8 px
        ("synth-haadf-low-2", 0.25, 10.0, 60, 0, 0, 40, False),  # 40 px
        ("synth-haadf-medium-3", 1.0, 30.0, 70, 2, 2, 26, False),  # 30 nm at 0.5: 60 px
        ("emps-a", 0.25, 20.0, 90, 0, 5, 5, False),
    ]
    frame = pd.DataFrame(
        [
            {
                "image_id": r[0],
                "source": r[0].split("-")[0],
                "pixel_size_nm": r[1],
                "diameter_truth_mean_nm": r[2],
                "tn": r[3],
                "fp": r[4],
                "fn": r[5],
                "tp": r[6],
                "quality_out_of_distribution": r[7],
            }
            for r in rows
        ]
    )
    frame.to_csv(folder / "per_image.csv", index=False)
    return folder


def test_subsets_sum_pixels_and_bin_by_working_grid_diameter(
    breakdown: ModuleType, tmp_path: Path
) -> None:
    table = breakdown.breakdown([_run(tmp_path / "run")])
    assert table.loc["synth: all", "images"] == 3
    # pixels summed: tp 76, fp 7, fn 7, tn 210 -> IoU 76/90, accuracy 286/300
    assert table.loc["synth: all", "run"] == f"{76 / 90:.3f} ({286 / 300:.3f})"
    assert table.loc["synth: not flagged", "images"] == 2
    assert table.loc["synth hrtem, low overlap", "run"] == f"{10 / 20:.3f} ({90 / 100:.3f})"
    assert table.loc["synth diameter 0-12 px", "images"] == 1
    assert table.loc["synth diameter 24-48 px", "images"] == 1
    assert table.loc["synth diameter >= 48 px", "images"] == 1
    assert table.loc["synth diameter 12-24 px", "images"] == 0
    assert table.loc["emps: all", "run"] == f"{5 / 10:.3f} ({95 / 100:.3f})"
