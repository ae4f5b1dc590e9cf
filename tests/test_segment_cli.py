"""``antema-scale train`` and ``antema-scale evaluate`` on tiny folders of labelled images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from skimage import io as skio
from typer.testing import CliRunner

from antema_scale.cli import app
from antema_scale.cli.train import parse_folder_spec
from antema_scale.segment.datasets import standin_micrograph


@pytest.fixture()
def labelled_folder(tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for seed in range(5):
        item = standin_micrograph(seed, (96, 96), mode="haadf", noise=0.03)
        grey = np.clip(item.image * 255, 0, 255).astype(np.uint8)
        skio.imsave(images / f"im{seed}.png", grey, check_contrast=False)
        skio.imsave(masks / f"im{seed}.png", item.mask.astype(np.uint16) * 3, check_contrast=False)
    return images, masks


def test_evaluate_threshold_writes_metrics(
    labelled_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    images, masks = labelled_folder
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--segmenter",
            "threshold",
            "--folder",
            f"{images}:{masks}:0.5",
            "--split",
            "train",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["summary"]["all"]
    assert summary["images"] == 3  # 60 % of 5
    assert summary["iou_particle"] > 0.7
    assert np.array(summary["confusion_matrix"]).sum() == 3 * 96 * 96
    assert (out / "per_image.csv").read_text().count("\n") == 4
    assert "IoU particle" in result.output
    report = (out / "metrics.md").read_text()
    assert f"| IoU particle | {summary['iou_particle']:.4f} |" in report
    assert "threshold on the train split." in report
    for figure in ("confusion_matrix", "diameters"):
        assert (out / f"{figure}.png").stat().st_size > 0, figure


def test_train_then_evaluate_network_and_export(
    labelled_folder: tuple[Path, Path], tmp_path: Path
) -> None:
    images, masks = labelled_folder
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--folder",
            f"{images}:{masks}:0.5",
            "--width",
            "4",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--batch-size",
            "2",
            "--tile",
            "64",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--output",
            str(run),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (run / "best.pt").is_file()
    exported = tmp_path / "exported.pt"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            str(run / "best.pt"),
            "--folder",
            f"{images}:{masks}:0.5",
            "--output",
            str(tmp_path / "ev"),
            "--export",
            str(exported),
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "ev" / "metrics.json").read_text())["settings"]
    assert (recorded["flips"], recorded["refine_to_px"], recorded["max_refine_zoom"]) == (8, 24, 2)
    assert recorded["precision"] == "auto"
    bad = ["evaluate", "--model", str(run / "best.pt"), "--folder", f"{images}:{masks}:0.5"]
    assert CliRunner().invoke(app, [*bad, "--flips", "3"]).exit_code == 2
    refused = CliRunner().invoke(app, [*bad, "--precision", "half"])
    assert refused.exit_code == 2 and "--precision must be one of" in refused.output
    assert CliRunner().invoke(app, [*bad, "--max-refine-zoom", "0.5"]).exit_code == 2
    from antema_scale.segment.model_file import load_model

    meta = load_model(exported, device="cpu").metadata
    assert meta["weights_dtype"] == "float16"
    assert meta["test_metrics"]["all"]["images"] == 1
    assert "evaluation_command" in meta


def test_bad_folder_spec_is_reported(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--folder", f"{tmp_path}/nope:{tmp_path}"])
    assert result.exit_code == 2
    with pytest.raises(typer.BadParameter, match="nope' does not exist"):
        parse_folder_spec(f"{tmp_path}/nope:{tmp_path}", 0.5)
    with pytest.raises(typer.BadParameter, match="is not a number"):
        parse_folder_spec(f"{tmp_path}:{tmp_path}:abc", 0.5)
    with pytest.raises(typer.BadParameter, match="expected IMAGES_DIR:MASKS_DIR"):
        parse_folder_spec(str(tmp_path), 0.5)


def test_fine_tuning_an_incompatible_model_is_a_clear_error(
    labelled_folder: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, masks = labelled_folder
    monkeypatch.chdir(tmp_path)  # short paths: the error box does not wrap them
    base = ["train", "--folder", f"{images}:{masks}:0.5", "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*base, "--init-model", "default", "--width", "8"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())  # the error box wraps long lines anywhere
    assert "--width at least the model's" in message and "Traceback" not in result.output
    result = CliRunner().invoke(app, [*base, "--init-model", "none.pt"])
    assert result.exit_code == 2 and "no such file" in result.output
    result = CliRunner().invoke(app, [*base, "--scale-min", "2", "--scale-max", "1"])
    assert result.exit_code == 2 and "--scale-min" in result.output
    result = CliRunner().invoke(app, [*base, "--shading", "-1"])
    assert result.exit_code == 2 and "--shading must be >= 0" in result.output
    result = CliRunner().invoke(app, [*base, "--annotations", "1.5"])
    assert result.exit_code == 2 and "--annotations must be in [0, 1]" in result.output
    result = CliRunner().invoke(app, [*base, "--raft-training", "-1"])
    assert result.exit_code == 2 and "--raft-training must be >= 0" in result.output
    result = CliRunner().invoke(app, [*base, "--raft-validation", "-1"])
    assert result.exit_code == 2 and "--raft-validation must be >= 0" in result.output
    result = CliRunner().invoke(app, [*base, "--precision", "fp16"])
    assert result.exit_code == 2 and "--precision must be one of auto, fp32, bf16" in result.output
    result = CliRunner().invoke(app, [*base, "--outline-weight", "-1"])
    assert result.exit_code == 2 and "--outline-weight must be >= 0" in result.output
    result = CliRunner().invoke(app, [*base, "--hard-examples", "-1"])
    assert result.exit_code == 2 and "--hard-examples must be >= 0" in result.output
    result = CliRunner().invoke(app, [*base, "--sparse-training", "-2"])
    assert result.exit_code == 2 and "--sparse-training must be >= 0, got -2" in result.output
    result = CliRunner().invoke(app, [*base, "--ema-decay", "1"])
    assert result.exit_code == 2 and "--ema-decay must be in [0, 1), got 1.0" in result.output
    result = CliRunner().invoke(app, [*base, "--loss", "dice"])
    assert result.exit_code == 2 and "--loss must be one of bce-dice, bce-lovasz" in result.output
    result = CliRunner().invoke(app, [*base, "--anchor-weight", "-1"])
    assert result.exit_code == 2 and "--anchor-weight must be >= 0, got -1.0" in result.output
    result = CliRunner().invoke(app, [*base, "--anchor-weight", "1", "--sparse-training", "4"])
    assert result.exit_code == 2 and "--anchor-weight needs --init-model" in result.output
    result = CliRunner().invoke(app, [*base, "--anchor-weight", "1", "--init-model", "default"])
    assert result.exit_code == 2 and "--anchor-weight needs --sparse-training" in result.output
    result = CliRunner().invoke(app, [*base, "--freeze-batch-norm"])
    assert result.exit_code == 2 and "--freeze-batch-norm needs --init-model" in result.output
    result = CliRunner().invoke(app, [*base, "--output-stride", "32"])
    assert result.exit_code == 2 and "--output-stride must be one of 16, 8" in result.output
