"""Speed-benchmark building blocks: dataset, serial loop, scaling arithmetic, summaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from antema_scale.benchmark.dataset import BENCH_PIXEL_SIZE_NM, build_dataset
from antema_scale.benchmark.report import (
    SUMMARY_END,
    SUMMARY_START,
    replace_summary,
    summary_markdown,
)
from antema_scale.benchmark.speed import (
    STAGES,
    StageClock,
    separation_comparison,
    serial_loop,
    strong_scaling,
)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    return build_dataset(tmp_path_factory.mktemp("bench"), sizes=(128,), n_per_size=2)


def test_dataset_layout_and_truth(tiny_dataset) -> None:
    assert tiny_dataset.sizes == [128]
    images = tiny_dataset.of_size(128)
    assert len(images) == 2
    for image in images:
        assert image.path.parent == tiny_dataset.folder(128)
        assert image.pixel_size_nm == BENCH_PIXEL_SIZE_NM
        mask = image.read_true_mask()
        assert mask.shape == (128, 128) and mask.any()
        assert image.megapixels == pytest.approx(128 * 128 / 1e6)
    with pytest.raises(ValueError, match="at least one image per size"):
        build_dataset(tiny_dataset.directory / "x", sizes=(128,), n_per_size=0)
    with pytest.raises(ValueError, match="at least 64 px"):
        build_dataset(tiny_dataset.directory / "y", sizes=(32,), n_per_size=1)


def test_serial_loop_times_every_stage_and_writes_tables(tiny_dataset, tmp_path: Path) -> None:
    from antema_scale.io import read_micrograph
    from antema_scale.particles import AnalysisOptions, analyze_mask
    from antema_scale.pipeline import SegmentationSettings
    from antema_scale.segment import threshold_segment

    paths = [image.path for image in tiny_dataset.of_size(128)]
    result = serial_loop(
        paths, SegmentationSettings(segmenter="threshold"), AnalysisOptions(), tmp_path, threads=1
    )
    assert set(result["stage_seconds"]) == set(STAGES)
    assert result["images"] == 2 and result["threads"] == 1
    assert result["megapixels"] == pytest.approx(2 * 128 * 128 / 1e6)
    assert result["images_per_s"] == pytest.approx(2 / result["seconds"])
    assert result["rss_peak_mib"] > 0
    expected = 0
    for path in paths:
        image = read_micrograph(path)
        values = np.asarray(image.values, dtype=np.float32)
        mask = threshold_segment(values, image.attrs["pixel_size_nm"]).mask
        table = analyze_mask(mask, image.attrs["pixel_size_nm"], image_id=path.stem)
        written = pd.read_parquet(tmp_path / f"{path.stem}.parquet")
        assert len(written) == len(table.particles)
        np.testing.assert_array_equal(np.load(tmp_path / f"{path.stem}_mask.npz")["mask"], mask)
        expected += len(table.particles)
    assert result["particles"] == expected


def test_separation_comparison_counts_match_direct_analysis(tiny_dataset) -> None:
    from antema_scale.particles import AnalysisOptions, analyze_mask

    image = tiny_dataset.of_size(128)[0]
    result = separation_comparison([image])
    row = result["rows"][0]
    mask = image.read_true_mask()
    assert row["default_found"] == len(analyze_mask(mask, image.pixel_size_nm).particles)
    assert row["uecs_paper_found"] == len(
        analyze_mask(mask, image.pixel_size_nm, options=AnalysisOptions.paper()).particles
    )
    if result["reference_available"]:
        assert row["speedup_default_vs_reference"] == pytest.approx(
            row["reference_s"] / row["default_s"]
        )


def test_strong_scaling_arithmetic() -> None:
    rows = strong_scaling([{"workers": 4, "seconds": 3.0}, {"workers": 1, "seconds": 10.0}])
    assert [r["workers"] for r in rows] == [1, 4]
    assert rows[0]["speedup"] == 1.0 and rows[0]["efficiency"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(10 / 3)
    assert rows[1]["efficiency"] == pytest.approx(10 / 3 / 4)
    assert strong_scaling([]) == []


def test_stage_clock_rejects_unknown_stage() -> None:
    clock = StageClock()
    with clock("read"):
        pass
    assert clock.seconds["read"] >= 0
    with pytest.raises(ValueError, match="unknown stage 'decode'"):
        clock("decode")


def _record(name: str, serial_ips: float, pipeline_ips: float) -> dict:
    return {
        "format": "antema-scale-bench-v1",
        "file": f"{name}.json",
        "fingerprint": {"hardware": {"cpu_model": "TestCPU", "cpu_count": 2, "gpus": []}},
        "load_average_start": [9.0, 9.0, 9.0],
        "speed": {
            "trained_model": True,
            "sizes": [
                {
                    "size": 1024,
                    "images": 4,
                    "serial": [{"images_per_s": serial_ips}],
                    "pipeline": [
                        {
                            "workers": 2,
                            "images_per_s": pipeline_ips,
                            "megapixels_per_s": 1.5,
                            "load_average": [3.5, 3.0, 2.0],
                            "cold_start_s": 12.0,
                            "worker_memory": [{"rss_peak_mib": 700.0}],
                        },
                    ],
                    "scaling": [{"workers": 2, "seconds": 1.0, "speedup": 1.0, "efficiency": 0.8}],
                    "pipeline_vs_serial": [{"speedup": pipeline_ips / serial_ips}],
                }
            ],
            "separation": {
                "rows": [
                    {"size": 1024, "speedup_default_vs_reference": 7.0},
                    {"size": 2048, "speedup_default_vs_reference": 30.0},
                ]
            },
        },
        "accuracy": {
            "default_mode": "hybrid",
            "pixel": [
                {"segmenter": "model", "group": "emps", "iou_particle": 0.81, "dice_particle": 0.9}
            ],
            "particles": [
                {
                    "segmenter": "model",
                    "mode": "hybrid",
                    "group": "emps",
                    "images": 3,
                    "f1": 0.75,
                    "split_fraction": 0.5,
                    "n_pairs": 8,
                    "diameter_mean_error_nm": -0.2,
                    "diameter_std_error_nm": 0.1,
                },
                {
                    "segmenter": "model",
                    "mode": "watershed",
                    "group": "emps",
                    "images": 3,
                    "f1": 0.7,
                    "split_fraction": 0.4,
                    "n_pairs": 8,
                    "diameter_mean_error_nm": -0.3,
                    "diameter_std_error_nm": 0.1,
                },
            ],
        },
    }


def test_summary_tables_come_from_the_records() -> None:
    text = summary_markdown([_record("cpu", 0.5, 1.25)])
    speed_line = next(line for line in text.splitlines() if line.startswith("| cpu.json"))
    cells = [c.strip() for c in speed_line.strip("|").split("|")]
    assert cells[1] == "TestCPU x2" and cells[2] == "3.5" and cells[4] == "1024² x 4"
    assert cells[5] == "0.500" and cells[6] == "1.250 (2 w)" and cells[8] == "2.50x"
    assert cells[9] == "0.80" and cells[11] == "700" and cells[12] == "7.0x"
    assert cells[13] == "–"  # no model block in this record
    accuracy = [line for line in text.splitlines() if "| model | " in line]
    assert len(accuracy) == 1  # default mode only (no uecs-paper row in this record)
    assert "0.810" in accuracy[0] and "0.750" in accuracy[0] and "0.50 of 8" in accuracy[0]


def test_replace_summary_keeps_the_rest_of_the_readme() -> None:
    readme = f"# Title\n\nintro\n\n{SUMMARY_START}\nold table\n{SUMMARY_END}\n\nfooter\n"
    updated = replace_summary(readme, "new table")
    assert updated.startswith("# Title\n\nintro\n\n") and updated.endswith("\n\nfooter\n")
    assert "new table" in updated and "old table" not in updated
    assert replace_summary(updated, "new table") == updated
    appended = replace_summary("# Bare\n", "table")
    assert appended.startswith("# Bare\n") and SUMMARY_START in appended and SUMMARY_END in appended


def test_choose_model_threshold_explicit_and_untrained_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import antema_scale.segment as segment
    from antema_scale.benchmark.speed import choose_model
    from antema_scale.segment import NetworkConfig, load_model

    threshold = choose_model("threshold", None, "cpu", tmp_path)
    assert threshold.settings.segmenter == "threshold" and threshold.trained
    monkeypatch.setattr(
        segment, "default_model_path", lambda: tmp_path / "absent.pt", raising=False
    )
    fallback = choose_model("model", None, "cpu", tmp_path)
    assert not fallback.trained and "untrained" in fallback.description
    stand_in = load_model(fallback.settings.model_path, device="cpu")
    assert stand_in.network.config == NetworkConfig()  # the default architecture, same cost
    explicit = choose_model("model", fallback.settings.model_path, "cpu", tmp_path, batch_size=2)
    assert explicit.trained and explicit.settings.batch_size == 2


def test_peak_memory_of_a_spawned_process_is_its_own() -> None:
    """A child must not report its parent's peak (``ru_maxrss`` survives fork + exec)."""
    import multiprocessing

    from antema_scale.benchmark.speed import peak_memory_mib

    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # 400 MiB resident in this process
    assert peak_memory_mib()["rss_peak_mib"] >= 400
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        child = pool.apply(peak_memory_mib)
    assert 0 < child["rss_peak_mib"] < 300
    del ballast


@pytest.mark.parametrize(("flips", "adapt"), [(4, True), (1, False)])
def test_serial_loop_masks_equal_the_pipeline_inference(
    tiny_dataset, tmp_path: Path, flips: int, adapt: bool
) -> None:
    """The serial baseline runs the same inference as the pipeline (flips, scale adaptation)."""
    from antema_scale.io import read_micrograph
    from antema_scale.particles import AnalysisOptions
    from antema_scale.pipeline import SegmentationSettings
    from antema_scale.pipeline.segmenters import ModelSegmenter
    from antema_scale.segment import default_model_path, load_model

    if not default_model_path().is_file():
        pytest.skip("no shipped model")
    settings = SegmentationSettings(segmenter="model", flips=flips, scale_adaptation=adapt)
    paths = [image.path for image in tiny_dataset.of_size(128)]
    serial_loop(paths, settings, AnalysisOptions(), tmp_path, threads=1)
    segmenter = ModelSegmenter(
        load_model(device="cpu"), batch_size=8, device="cpu", scale_adaptation=adapt, flips=flips
    )
    for path in paths:
        image = read_micrograph(path)
        (pred,) = segmenter.segment([np.asarray(image.values)], [image.attrs["pixel_size_nm"]])
        with np.load(tmp_path / f"{path.stem}_mask.npz") as saved:
            np.testing.assert_array_equal(saved["mask"], pred.mask)
