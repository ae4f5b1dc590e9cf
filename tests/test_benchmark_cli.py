"""``antema-scale bench`` end to end at a tiny size: the JSON record and its markdown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from antema_scale.benchmark.speed import STAGES
from antema_scale.cli import app


def _tiny_model(path: Path) -> Path:
    import torch

    from antema_scale.segment import NetworkConfig, Preprocessing, build_network, save_model

    torch.manual_seed(0)
    network = build_network(NetworkConfig(base_width=8, aspp_rates=(2, 4)))
    save_model(path, network, Preprocessing(pixel_size_range_nm=(0.25, 0.5)))
    return path


def _fake_emps(root: Path, count: int = 5) -> list[str]:
    """An EMPS-like folder: grey PNG images and uint16 instance label maps."""
    from skimage.io import imsave

    (root / "images").mkdir(parents=True)
    (root / "segmaps").mkdir()
    yy, xx = np.mgrid[:96, :96]
    ids = []
    for k in range(count):
        labels = np.zeros((96, 96), dtype=np.uint16)
        for label, (cy, cx) in enumerate([(30, 30), (60, 64), (30, 70)], start=1):
            labels[(yy - cy - k) ** 2 + (xx - cx) ** 2 <= 100] = label
        image = np.where(labels > 0, 60, 200).astype(np.uint8)
        stem = f"emps{k:03d}"
        imsave(root / "images" / f"{stem}.png", image, check_contrast=False)
        imsave(root / "segmaps" / f"{stem}.png", labels, check_contrast=False)
        ids.append(stem)
    return ids


def test_bench_writes_record_and_markdown(tmp_path: Path) -> None:
    model = _tiny_model(tmp_path / "tiny.pt")
    emps = tmp_path / "emps"
    _fake_emps(emps)
    output = tmp_path / "results" / "tiny.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--sizes",
            "128",
            "--n",
            "2",
            "--workers",
            "1",
            "--model",
            str(model),
            "--device",
            "cpu",
            "--emps",
            str(emps),
            "--synthetic-per-level",
            "1",
            "--synthetic-size",
            "128",
            "--workdir",
            str(tmp_path / "work"),
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(output.read_text())
    assert record["format"] == "antema-scale-bench-v1" and record["name"] == "tiny"
    assert record["complete"] is True
    hardware = record["fingerprint"]["hardware"]
    assert hardware["cpu_count"] >= 1 and "cpu_model" in hardware and "gpus" in hardware
    assert {"torch", "dask", "antema-scale"} <= set(record["fingerprint"]["software"])
    assert len(record["load_average_start"]) == 3 and len(record["load_average_end"]) == 3
    (block,) = record["speed"]["sizes"]
    assert block["size"] == 128 and block["images"] == 2
    (serial,) = block["serial"]
    assert set(serial["stage_seconds"]) == set(STAGES) and serial["images"] == 2
    (run,) = block["pipeline"]
    assert run["workers"] == 1 and run["images"] == 2 and run["errors"] == []
    assert run["cold_start_s"] == pytest.approx(
        run["cluster_start_s"] + run["model_load_s"] + run["warmup_s"]
    )
    assert len(run["worker_memory"]) == 1 and run["worker_memory"][0]["rss_peak_mib"] > 0
    assert block["scaling"] == [
        {"workers": 1, "seconds": run["seconds"], "speedup": 1.0, "efficiency": 1.0}
    ]
    (ratio,) = block["pipeline_vs_serial"]
    assert ratio["speedup"] == pytest.approx(run["images_per_s"] / serial["images_per_s"])
    assert record["speed"]["separation"]["rows"][0]["size"] == 128
    accuracy = record["accuracy"]
    assert accuracy["images"] == {"emps": 1, "synth-high": 1, "synth-low": 1, "synth-medium": 1}
    assert {(r["segmenter"], r["group"]) for r in accuracy["pixel"]} >= {
        ("model", "emps"),
        ("threshold", "emps"),
        ("threshold", "all"),
    }
    from antema_scale.particles.analyze import SEPARATION_MODES

    combos = {(r["segmenter"], r["mode"]) for r in accuracy["particles"]}
    assert combos == {(s, m) for s in ("truth", "model", "threshold") for m in SEPARATION_MODES}
    emps_truth = next(
        r
        for r in accuracy["particles"]
        if r["segmenter"] == "truth" and r["mode"] == "none" and r["group"] == "emps"
    )
    assert emps_truth["n_truth"] == 3 and emps_truth["f1"] == 1.0  # three isolated discs
    assert record["speed"]["model"]["architecture"]["base_width"] == 8
    markdown = output.with_suffix(".md").read_text()
    for heading in (
        "## Speed",
        "### 128 x 128 px, 2 images",
        "## Accuracy",
        "IoU particle",
        "network w8",
    ):
        assert heading in markdown
    assert "Partial record" not in markdown


def test_bench_rejects_bad_lists() -> None:
    result = CliRunner().invoke(app, ["bench", "--sizes", "1024,abc"])
    assert result.exit_code != 0
    assert "--sizes must be positive integers" in result.output
