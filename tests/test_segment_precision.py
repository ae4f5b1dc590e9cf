"""Inference precision: which autocast type runs where, errors, and what bf16 changes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from antema_scale.pipeline.settings import (
    PipelineOptionError,
    SegmentationSettings,
    parameter_hash,
)
from antema_scale.segment import precision as precision_module
from antema_scale.segment.inference import predict
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
from antema_scale.segment.model_file import SegmentationModel, default_model_path, load_model
from antema_scale.segment.precision import PRECISIONS, autocast_dtype, check_precision


def test_auto_is_float32_off_cuda_and_forced_types_are_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype("cpu") is None
    assert autocast_dtype("mps", "auto") is None
    assert autocast_dtype("cuda", "fp32") is None
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    assert autocast_dtype("cpu", "fp16") is torch.float16
    assert autocast_dtype("cuda:1", "fp16") is torch.float16


def test_bf16_on_a_cpu_without_it_warns_but_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="emulated and slower"):
        assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        autocast_dtype("cpu", "bf16")


@pytest.mark.parametrize("bad", ["float32", "half", "", "BF16"])
def test_unknown_precision_is_refused_everywhere(bad: str) -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16"):
        check_precision(bad)
    with pytest.raises(PipelineOptionError, match=f"got {bad!r}"):
        SegmentationSettings(segmenter="model", precision=bad)
    with pytest.raises(ValueError, match="precision must be one of"):
        predict(
            SegmentationModel(torch.nn.Identity(), None),  # type: ignore[arg-type]
            [np.ones((8, 8))],
            [0.25],
            precision=bad,
        )


def test_precision_is_part_of_the_result_key_of_the_network_only() -> None:
    options = {"separation": "uecs"}
    auto = parameter_hash(SegmentationSettings(segmenter="model"), options)
    assert auto != parameter_hash(
        SegmentationSettings(segmenter="model", precision="bf16"), options
    )
    assert set(PRECISIONS) == {"auto", "fp32", "bf16", "fp16"}
    assert parameter_hash(SegmentationSettings(segmenter="threshold"), options) == parameter_hash(
        SegmentationSettings(segmenter="threshold", precision="bf16"), options
    )


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_bf16_segments_like_fp32_against_the_truth(mode: str) -> None:
    """Same particles to a few pixels: bf16 is a speed option, not a different result."""
    if not default_model_path().is_file():
        pytest.skip("no shipped model in antema_scale/models/")
    from antema_scale.segment.datasets import standin_micrograph

    model = load_model(device="cpu")
    item = standin_micrograph(7, (256, 256), mode=mode, pixel_size_nm=0.25, noise=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on older CPUs
        fp32, bf16 = (
            predict(model, [item.image], [0.25], batch_size=2, flips=2, precision=p)[0]
            for p in ("fp32", "bf16")
        )
    assert bf16.probability.dtype == np.float32
    assert np.abs(bf16.probability - fp32.probability).max() < 0.1
    assert (bf16.mask != fp32.mask).mean() < 2e-3
    ious = [
        pixel_metrics(confusion_matrix(item.mask, p.mask))["iou_particle"] for p in (fp32, bf16)
    ]
    assert ious[0] > 0.6
    assert ious[1] == pytest.approx(ious[0], abs=0.01)
