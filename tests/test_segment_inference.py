"""Tiled inference: seams, pixel-size resampling, quality signal, input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from antema_scale.segment.inference import (
    OUTPUT_STRIDE,
    blend_window,
    predict,
    predict_prepared,
    quality_signal,
    tile_origins,
)
from antema_scale.segment.model_file import SegmentationModel
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.preprocess import Preprocessing, prepare_image, working_zoom


@pytest.fixture(scope="module")
def tiny_model() -> SegmentationModel:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4))).eval()
    return SegmentationModel(net, Preprocessing((0.2, 0.8), sigma_px=1.0))


@pytest.mark.parametrize("length", [100, 300, 1024, 1100, 2048, 5000])
def test_tile_origins_cover_overlap_and_align(length: int) -> None:
    starts, padded, size = tile_origins(length, 1024, 128)
    assert starts[0] == 0 and all(s % OUTPUT_STRIDE == 0 for s in starts)
    assert size % OUTPUT_STRIDE == 0 and size <= 1024
    assert padded >= length and starts[-1] + size == padded
    if len(starts) > 1:
        assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) <= size - 128
    assert padded - length < OUTPUT_STRIDE * len(starts) + OUTPUT_STRIDE


def test_tile_origins_examples() -> None:
    assert tile_origins(100, 128, 32) == ([0], 128, 128)
    assert tile_origins(1024, 1024, 128) == ([0], 1024, 1024)
    starts, padded, size = tile_origins(2048, 1024, 128)
    assert (len(starts), size, padded) == (3, 768, 2048)


def test_blend_window_is_positive_and_peaks_in_the_middle() -> None:
    w = blend_window((64, 32))
    assert w.shape == (64, 32) and w.min() > 0
    assert w[32, 16] == pytest.approx(w.max())


def _contrasty(net: torch.nn.Module, image: np.ndarray) -> torch.nn.Module:
    """Rescale the head of a random network so its probabilities span 0..1 on ``image``."""
    with torch.no_grad():
        logits = net(torch.from_numpy(image)[None, None])
        scale = 3.0 / logits.std()
        net.head.weight.mul_(scale)
        net.head.bias.copy_((net.head.bias - logits.mean()) * scale)
    return net


def test_tiled_prediction_equals_untiled_away_from_borders(tiny_model: SegmentationModel) -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(224, 288)).astype(np.float32)
    torch.manual_seed(0)
    net = _contrasty(build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4))).eval(), image)
    whole = predict_prepared(net, [image], tile=320, overlap=0)[0]
    tiled = predict_prepared(net, [image], tile=128, overlap=64, batch_size=3)[0]
    seams = predict_prepared(net, [image], tile=128, overlap=0)[0]
    assert whole.std() > 0.2  # the comparison is not between two constant maps
    assert tiled.shape == whole.shape == image.shape
    inner = (slice(32, -32), slice(32, -32))
    # Tiles see padding where the whole image sees real pixels, so outputs agree closely
    # but not bit for bit; without overlap and blending the seams show.
    err = np.abs(tiled[inner] - whole[inner])
    assert err.mean() < 0.01 and err.max() < 0.15
    assert np.mean((tiled[inner] > 0.5) == (whole[inner] > 0.5)) > 0.99
    assert np.abs(seams[inner] - whole[inner]).max() > 0.5


def test_batching_across_images_does_not_change_results(tiny_model: SegmentationModel) -> None:
    rng = np.random.default_rng(2)
    images = [rng.normal(size=s).astype(np.float32) for s in [(70, 90), (200, 150), (70, 90)]]
    together = predict_prepared(tiny_model.network, images, tile=128, overlap=32, batch_size=5)
    alone = [predict_prepared(tiny_model.network, [im], tile=128, overlap=32)[0] for im in images]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(("pixel_size", "zoom"), [(0.1, 0.5), (0.5, 1.0), (1.6, 2.0)])
def test_resampling_maps_back_to_original_grid(
    tiny_model: SegmentationModel, pixel_size: float, zoom: float
) -> None:
    image = np.random.default_rng(3).normal(size=(61, 77))
    assert working_zoom(pixel_size, (0.2, 0.8)) == pytest.approx(zoom)
    prepared, z = prepare_image(image, pixel_size, tiny_model.preprocessing)
    assert prepared.shape == (round(61 * zoom), round(77 * zoom))
    (pred,) = predict(tiny_model, [image], [pixel_size], batch_size=2, device="cpu")
    assert pred.mask.shape == pred.probability.shape == image.shape
    assert pred.mask.dtype == bool and pred.probability.dtype == np.float32
    assert pred.quality["zoom"] == pytest.approx(z)
    assert 0.0 <= pred.probability.min() <= pred.probability.max() <= 1.0


def test_quality_signal_flags_uncertain_images() -> None:
    sure = np.where(np.arange(100) < 30, 0.99, 0.01).astype(np.float32).reshape(10, 10)
    unsure = np.full((10, 10), 0.55, dtype=np.float32)
    q_sure, q_unsure = quality_signal(sure, 1.0), quality_signal(unsure, 1.0)
    assert q_sure["mean_margin"] == pytest.approx(0.98)
    assert q_sure["particle_fraction"] == pytest.approx(0.3)
    assert q_sure["out_of_distribution"] is False
    assert q_unsure["uncertain_fraction"] == 1.0 and q_unsure["out_of_distribution"] is True
    assert quality_signal(sure, 1 / 32)["out_of_distribution"] is True


@pytest.mark.parametrize(
    ("image", "pixel", "message"),
    [
        (np.zeros((4, 4, 4)), 0.5, "2-D"),
        (np.full((8, 8), np.nan), 0.5, "NaN"),
        (np.ones((8, 8)), -1.0, "positive"),
        (np.ones((8, 8)), float("nan"), "finite"),
    ],
)
def test_bad_input_raises_clear_errors(
    tiny_model: SegmentationModel, image: np.ndarray, pixel: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        predict(tiny_model, [image], [pixel], batch_size=1)


def test_mismatched_lengths(tiny_model: SegmentationModel) -> None:
    with pytest.raises(ValueError, match="2 images but 1 pixel sizes"):
        predict(tiny_model, [np.ones((8, 8))] * 2, [0.5], batch_size=1)


def test_constant_image_gives_no_nans(tiny_model: SegmentationModel) -> None:
    (pred,) = predict(tiny_model, [np.full((40, 40), 7.0)], [0.5], batch_size=1)
    assert np.isfinite(pred.probability).all()
