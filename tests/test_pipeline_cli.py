"""``antema-scale analyze`` and ``antema-scale demo`` on the command line."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_pipeline_end_to_end import synthetic_folder, write_h5
from typer.testing import CliRunner

from antema_scale.cli import app


def test_analyze_command_runs_options_through_and_fails_on_bad_files(tmp_path: Path) -> None:
    synthetic_folder(tmp_path / "in", 2, size=128, first_seed=60)
    write_h5(
        tmp_path / "in" / "diffraction.h5",
        np.random.default_rng(0).random((32, 32)).astype(np.float32),
        0.1,
        "1/nm",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "in"),
            "-o",
            str(out),
            "--segmenter",
            "threshold",
            "--separation",
            "watershed",
            "--min-particle-diameter-nm",
            "0.8",
            "--csv",
            "--workers",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "ReciprocalSpaceError" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["analysis"]["separation"] == "watershed"
    assert manifest["parameters"]["analysis"]["min_particle_diameter_nm"] == 0.8
    assert manifest["cluster"]["workers"] == 1
    particles = pd.read_parquet(out / "particles.parquet")
    assert len(particles) > 0 and (out / "particles.csv").is_file()
    assert list(pd.read_csv(out / "errors.csv").error_type) == ["ReciprocalSpaceError"]


def test_invalid_analysis_option_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["analyze", str(tmp_path), "-o", str(tmp_path / "out"), "--convexity-threshold", "1.5"]
    )
    assert result.exit_code == 2
    assert "convexity_threshold" in result.output


def test_unknown_separation_mode_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["analyze", str(tmp_path), "-o", str(tmp_path), "--separation", "magic"]
    )
    assert result.exit_code == 2
    assert "magic" in result.output


def test_unknown_precision_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["analyze", str(tmp_path), "-o", str(tmp_path / "out"), "--precision", "half"]
    )
    assert result.exit_code == 2
    assert "precision must be one of auto, fp32, bf16, fp16" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_kubernetes_backend_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_dask_kubernetes(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("dask_kubernetes"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask_kubernetes)
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path),
            "-o",
            str(tmp_path / "out"),
            "--cluster",
            "kubernetes",
            "--segmenter",
            "threshold",
        ],
    )
    assert result.exit_code == 2
    assert "antema-scale[k8s]" in result.output


def test_scheduler_and_cluster_together_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path),
            "-o",
            str(tmp_path),
            "--scheduler",
            "tcp://127.0.0.1:1",
            "--cluster",
            "slurm",
        ],
    )
    assert result.exit_code == 2
    assert "cannot be combined" in result.output


@pytest.mark.slow
def test_demo_writes_results_a_newcomer_can_open(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "demo"), "--quiet"])
    assert result.exit_code == 0, result.output
    results = tmp_path / "demo" / "results"
    for name in (
        "particles.parquet",
        "particles.csv",
        "particles.xlsx",
        "report.html",
        "manifest.json",
    ):
        assert (results / name).is_file(), name
    particles = pd.read_parquet(results / "particles.parquet")
    truth = pd.read_csv(tmp_path / "demo" / "sample" / "truth" / "truth.csv")
    assert particles.image_id.nunique() == truth.image_id.nunique()
    assert "Open the report" in result.output


@pytest.mark.slow
def test_corrupt_model_file_is_a_clear_usage_error(tmp_path: Path) -> None:
    synthetic_folder(tmp_path / "in", 1, size=96, first_seed=80)
    model = tmp_path / "broken.pt"
    model.write_bytes(b"not a torch file")
    result = CliRunner().invoke(
        app,
        [
            "analyze",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(model),
            "--workers",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot load the segmentation model" in result.output
    assert "broken.pt" in result.output
