"""The scripts in ``examples/`` run and do what their docstrings say."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_segment_and_evaluate_scores_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load("segment_and_evaluate")
    from antema_scale.segment.train import RAFT_TRAIN_SEED_BASE, SYNTH_SEED_BASE

    assert example.FIRST_SEED > max(*SYNTH_SEED_BASE.values(), RAFT_TRAIN_SEED_BASE) + 10**6
    summary = example.main(["-o", str(tmp_path), "--images", "2", "--size", "256", "--flips", "1"])
    printed = capsys.readouterr().out
    assert "synth-hrtem-low-9000000" in printed and "synth-haadf-low-9000001" in printed
    assert summary["all"]["images"] == 2
    # one bright-field and one HAADF image drawn by the training sampler: the shipped model
    # segments both well (0.89 and 0.93 particle IoU when this test was written)
    assert summary["all"]["iou_particle"] > 0.75
    assert (tmp_path / "metrics.md").read_text().count("| IoU particle |") == 1
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
