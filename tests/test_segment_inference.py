"""Tiled inference: seams, pixel-size resampling, quality signal, input errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from antema_scale.segment.errors import ImageInputError
from antema_scale.segment.inference import (
    OUTPUT_STRIDE,
    blend_window,
    flip_averaged_logits,
    median_particle_diameter_px,
    predict,
    predict_prepared,
    quality_signal,
    refine_zoom,
    shared_refine_zoom,
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
    (pred,) = predict(
        tiny_model, [image], [pixel_size], batch_size=2, device="cpu", target_diameter_px=None
    )
    assert pred.quality["refine_zoom"] == 1.0
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


def test_far_too_coarse_images_are_refused_before_any_work(tiny_model: SegmentationModel) -> None:
    # 87 nm/px (an EMD file in ../shared/data/formats): 109x enlargement onto 0.2-0.8 nm/px
    with pytest.raises(
        ImageInputError, match=r"image 0: pixel size 87.37 nm/px is 109x coarser"
    ) as info:
        predict(tiny_model, [np.ones((128, 128))], [87.37], batch_size=1)
    assert "at most 16x (up to 12.8 nm/px)" in str(info.value)
    assert "--segmenter threshold" in str(info.value)
    assert info.value.index == 0 and info.value.reason.startswith("pixel size 87.37")
    assert pickle.loads(pickle.dumps(info.value)).reason == info.value.reason
    # 16x is still allowed
    (pred,) = predict(tiny_model, [np.ones((8, 8))], [12.8], target_diameter_px=None, flips=1)
    assert pred.mask.shape == (8, 8) and pred.quality["zoom"] == pytest.approx(16.0)


def test_working_grid_size_limit(
    tiny_model: SegmentationModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from antema_scale.segment import preprocess

    monkeypatch.setattr(preprocess, "MAX_WORKING_PIXELS", 2 * 160 * 160)
    assert preprocess.largest_zoom_factor((160, 160), 1.0) == pytest.approx(2**0.5)
    assert preprocess.largest_zoom_factor((400, 400), 1.0) == pytest.approx(1.0)  # own size
    # Enlargement past the limit is an error naming the size ...
    with pytest.raises(ValueError, match="working grid would be 640 x 640 px"):
        prepare_image(np.ones((160, 160)), 3.2, tiny_model.preprocessing)
    # ... and the second pass is capped by it instead of refused.
    image = _disks((160, 160), 8.0, 20).astype(np.float32)
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    (pred,) = predict(model, [image], [0.5], batch_size=2)
    assert pred.quality["refine_zoom"] == pytest.approx(2**0.5)
    (fixed,) = predict(model, [image], [0.5], refine_zooms=[2.0])
    assert fixed.quality["refine_zoom"] == pytest.approx(2**0.5)


def test_mismatched_lengths(tiny_model: SegmentationModel) -> None:
    with pytest.raises(ValueError, match="2 images but 1 pixel sizes"):
        predict(tiny_model, [np.ones((8, 8))] * 2, [0.5], batch_size=1)


def test_constant_image_gives_no_nans(tiny_model: SegmentationModel) -> None:
    (pred,) = predict(tiny_model, [np.full((40, 40), 7.0)], [0.5], batch_size=1)
    assert np.isfinite(pred.probability).all()


class _BrightIsParticle(torch.nn.Module):
    """A stand-in network: bright = particle (threshold at half the tile's maximum)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * (x - x.amax(dim=(-2, -1), keepdim=True) / 2)


def _disks(shape: tuple[int, int], diameter_px: float, spacing: int) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    cy = (rows % spacing) - spacing / 2
    cx = (cols % spacing) - spacing / 2
    return (cy**2 + cx**2) <= (diameter_px / 2) ** 2


def test_median_particle_diameter_ignores_specks_and_handles_empty() -> None:
    mask = _disks((120, 120), 10.0, 30)
    prob = mask.astype(np.float32)
    expected = np.sqrt(4 * mask[:30, :30].sum() / np.pi)
    prob[2, 2] = prob[2, 5] = 1.0  # 1-px specks do not count
    for r in range(1, 120, 30):  # twice as many 2x2 specks as disks, in the cell corners:
        for c in (*range(1, 120, 30), *range(5, 120, 30)):  # the area-weighted median
            prob[r : r + 2, c : c + 2] = 1.0  # ignores them, a plain one would not
    assert median_particle_diameter_px(prob) == pytest.approx(expected)
    assert 9.5 < expected < 10.5
    assert np.isnan(median_particle_diameter_px(np.zeros((20, 20), np.float32)))


def test_refine_zoom_rules() -> None:
    assert refine_zoom(6.0, 24.0, 2.0) == 2.0
    assert refine_zoom(16.0, 24.0, 2.0) == pytest.approx(1.5)
    assert refine_zoom(30.0, 24.0, 2.0) == 1.0
    assert refine_zoom(float("nan"), 24.0, 2.0) == 1.0


@pytest.mark.parametrize(("diameter", "refined"), [(8.0, True), (40.0, False)])
def test_scale_adaptation_refines_only_images_of_small_particles(
    diameter: float, refined: bool
) -> None:
    truth = _disks((160, 160), diameter, 20 if diameter < 20 else 80)
    image = truth.astype(np.float32) + np.random.default_rng(4).normal(0, 0.05, truth.shape)
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    (pred,) = predict(model, [image], [0.5], batch_size=2, target_diameter_px=24.0)
    (single,) = predict(model, [image], [0.5], batch_size=2, target_diameter_px=None)
    assert pred.quality["particle_diameter_px"] == pytest.approx(diameter, rel=0.25)
    if refined:
        assert pred.quality["refine_zoom"] == 2.0 and pred.quality["zoom"] == 2.0
    else:
        assert pred.quality["refine_zoom"] == 1.0 and pred.quality["zoom"] == 1.0
        np.testing.assert_array_equal(pred.mask, single.mask)
    assert single.quality["refine_zoom"] == 1.0 and single.quality["zoom"] == 1.0
    # Either way the mask comes back on the original grid and matches the disks.
    assert pred.mask.shape == truth.shape
    iou = (pred.mask & truth).sum() / (pred.mask | truth).sum()
    assert iou > 0.8


def test_fixed_refine_zooms_skip_the_decision_and_match_the_adaptive_pass() -> None:
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    small = _disks((160, 160), 8.0, 20).astype(np.float32)
    large = _disks((160, 160), 40.0, 80).astype(np.float32)
    adaptive = predict(model, [small, large], [0.5, 0.5], batch_size=2)
    # The decisions the images would take for themselves, given: identical masks.
    fixed = predict(model, [small, large], [0.5, 0.5], batch_size=2, refine_zooms=[2.0, 1.0])
    for a, f in zip(adaptive, fixed, strict=True):
        np.testing.assert_array_equal(a.mask, f.mask)
        assert a.quality["refine_zoom"] == f.quality["refine_zoom"]
        assert f.quality["particle_diameter_px"] == pytest.approx(
            a.quality["particle_diameter_px"], rel=0.2
        )
    # A forced decision wins over the image's own: the large disks on the finer grid.
    (forced,) = predict(model, [large], [0.5], refine_zooms=[2.0])
    assert forced.quality["refine_zoom"] == 2.0 and forced.quality["zoom"] == 2.0
    # None entries decide per image.
    mixed = predict(model, [small, large], [0.5, 0.5], refine_zooms=[None, 2.0])
    assert [m.quality["refine_zoom"] for m in mixed] == [2.0, 2.0]
    with pytest.raises(ValueError, match="image 1: refine zoom must be >= 1"):
        predict(model, [small, large], [0.5, 0.5], refine_zooms=[1.0, 0.5])
    with pytest.raises(ValueError, match="2 images but 1 refine zooms"):
        predict(model, [small, large], [0.5, 0.5], refine_zooms=[1.0])


def test_shared_refine_zoom_is_one_decision_from_the_median_frame() -> None:
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    frames = [
        _disks((160, 160), d, 20 if d < 20 else 80).astype(np.float32) for d in (8.0, 10.0, 40.0)
    ]
    diameter, zoom = shared_refine_zoom(model, frames, [0.5] * 3)
    assert diameter == pytest.approx(10.0, rel=0.25)  # the median frame
    assert zoom == 2.0
    diameter, zoom = shared_refine_zoom(model, frames[2:], [0.5])
    assert diameter == pytest.approx(40.0, rel=0.25) and zoom == 1.0
    blank = np.zeros((64, 64), dtype=np.float32)
    diameter, zoom = shared_refine_zoom(model, [blank], [0.5])
    assert np.isnan(diameter) and zoom == 1.0
    with pytest.raises(ValueError, match="at least one image"):
        shared_refine_zoom(model, [], [])


def test_max_refine_zoom_below_one_is_an_error(tiny_model: SegmentationModel) -> None:
    with pytest.raises(ValueError, match="max_refine_zoom"):
        predict(tiny_model, [np.ones((8, 8))], [0.5], max_refine_zoom=0.5)


def test_prepare_image_zoom_factor(tiny_model: SegmentationModel) -> None:
    image = np.random.default_rng(5).normal(size=(40, 50))
    prepared, zoom = prepare_image(image, 0.5, tiny_model.preprocessing, zoom_factor=1.5)
    assert prepared.shape == (60, 75) and zoom == pytest.approx(1.5)
    with pytest.raises(ValueError, match="zoom_factor"):
        prepare_image(image, 0.5, tiny_model.preprocessing, zoom_factor=0.0)


@pytest.mark.parametrize("adapt", [True, False])
def test_pipeline_model_segmenter_passes_scale_adaptation_through(adapt: bool) -> None:
    from antema_scale.pipeline.segmenters import ModelSegmenter

    image = _disks((160, 160), 8.0, 20).astype(np.float32)
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    segmenter = ModelSegmenter(model, batch_size=2, device="cpu", scale_adaptation=adapt)
    (pred,) = segmenter.segment([image], [0.5])
    assert pred.quality["refine_zoom"] == (2.0 if adapt else 1.0)


def test_both_pipeline_segmenters_follow_the_segmenter_protocol() -> None:
    from antema_scale.pipeline.segmenters import ModelSegmenter, Segmenter, ThresholdSegmenter

    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    network = ModelSegmenter(model, batch_size=2, device="cpu")
    threshold = ThresholdSegmenter()
    assert isinstance(network, Segmenter) and isinstance(threshold, Segmenter)
    assert not isinstance(object(), Segmenter)
    image = _disks((96, 96), 8.0, 6).astype(np.float32)
    for segmenter in (network, threshold):
        (pred,) = segmenter.segment([image], [0.5])
        assert pred.mask.shape == image.shape and pred.mask.dtype == bool
    assert network.shares_scale_per_movie and not threshold.shares_scale_per_movie
    assert threshold.movie_refine_zoom([image], 0.5) is None


class _Lopsided(torch.nn.Module):
    """A network that is not mirror-symmetric: logit = the pixel minus its right neighbour."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - torch.roll(x, -1, dims=-1)


def test_flip_averaging_unmirrors_every_view() -> None:
    x = torch.randn(2, 1, 8, 10)
    net = _Lopsided()
    plain = flip_averaged_logits(net, x, 1)
    torch.testing.assert_close(plain, net(x))
    # mirrored in x, the lopsided network looks left instead: the x-views average out
    mirrored = torch.flip(net(torch.flip(x, (-1,))), (-1,))
    expected4 = (2 * net(x) + 2 * mirrored) / 4  # the y-mirror changes nothing here
    torch.testing.assert_close(flip_averaged_logits(net, x, 4), expected4)
    torch.testing.assert_close(flip_averaged_logits(net, x, 2), (net(x) + mirrored) / 2)
    symmetric = _BrightIsParticle()
    torch.testing.assert_close(flip_averaged_logits(symmetric, x, 4), symmetric(x))
    # 8 views: the transposed tile turns "right neighbour" into "lower neighbour"; mapped
    # back, half of the views look along x (averaging as above) and half along y.
    down = x - torch.roll(x, -1, dims=-2)
    up = torch.flip(torch.flip(x, (-2,)) - torch.roll(torch.flip(x, (-2,)), -1, dims=-2), (-2,))
    expected8 = (expected4 + (down + up) / 2) / 2
    torch.testing.assert_close(flip_averaged_logits(net, x, 8), expected8)
    torch.testing.assert_close(flip_averaged_logits(symmetric, x, 8), symmetric(x))
    with pytest.raises(ValueError, match="flips must be one of"):
        flip_averaged_logits(net, x, 3)


def test_predict_flips_option(tiny_model: SegmentationModel) -> None:
    image = np.random.default_rng(6).normal(size=(70, 90))
    one, four = (
        predict(tiny_model, [image], [0.5], target_diameter_px=None, flips=f)[0] for f in (1, 4)
    )
    assert one.mask.shape == four.mask.shape == image.shape
    assert not np.allclose(one.probability, four.probability)  # the views differ
    with pytest.raises(ValueError, match="flips"):
        predict(tiny_model, [image], [0.5], flips=3)


def test_every_entry_point_defaults_to_the_same_inference() -> None:
    """predict, the pipeline, evaluate and the CLI must not drift apart."""
    import inspect

    from typer.testing import CliRunner

    from antema_scale.cli import app
    from antema_scale.pipeline.segmenters import ModelSegmenter
    from antema_scale.pipeline.settings import SegmentationSettings
    from antema_scale.segment.evaluate import network_segmenter
    from antema_scale.segment.inference import shared_refine_zoom

    def default(function: object, name: str) -> object:
        return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]

    flips = default(predict, "flips")
    assert flips == 8
    assert SegmentationSettings().flips == flips
    assert default(ModelSegmenter.__init__, "flips") == flips
    assert default(network_segmenter, "flips") == flips
    assert default(shared_refine_zoom, "flips") == flips
    for function in (predict, ModelSegmenter.__init__, network_segmenter, shared_refine_zoom):
        assert default(function, "precision") == "auto"
    assert SegmentationSettings().precision == "auto"
    for command in ("analyze", "evaluate"):
        text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"}).output
        flips_line = next(line for line in text.splitlines() if "--flips" in line)
        assert "[default: 8]" in flips_line, flips_line


def test_host_threads_do_not_change_results() -> None:
    """Per-image host work on threads: the same masks, probabilities and quality, in order."""
    model = SegmentationModel(_BrightIsParticle(), Preprocessing((0.2, 0.8), sigma_px=1.0))  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    images = [
        _disks((160, 160), 8.0, 20).astype(np.float32) + rng.normal(0, 0.05, (160, 160)),
        _disks((160, 160), 40.0, 80).astype(np.float32),
        _disks((120, 200), 12.0, 30).astype(np.float32),
        _disks((160, 160), 30.0, 60).astype(np.float32)[::-1],
    ]
    pixels = [0.5, 0.5, 0.1, 1.5]  # in range, finer (shrunk), coarser (enlarged)
    kwargs = {"batch_size": 3, "refine_zooms": [None, None, None, 1.5]}
    serial = predict(model, images, pixels, host_threads=1, **kwargs)  # type: ignore[arg-type]
    threaded = predict(model, images, pixels, host_threads=3, **kwargs)  # type: ignore[arg-type]
    assert [p.quality["refine_zoom"] for p in serial] == [2.0, 1.0, 2.0, 1.5]
    for one, many, image in zip(serial, threaded, images, strict=True):
        assert many.mask.shape == image.shape
        np.testing.assert_array_equal(one.probability, many.probability)
        np.testing.assert_array_equal(one.mask, many.mask)
        assert one.quality == pytest.approx(many.quality, nan_ok=True)


def test_host_threads_report_the_first_bad_image_and_reject_zero(
    tiny_model: SegmentationModel,
) -> None:
    good = np.ones((16, 16), dtype=np.float32)
    images = [good, good, np.full((8, 8), np.nan), np.zeros((2, 2, 2)), good]
    with pytest.raises(ImageInputError, match="image 2") as caught:
        predict(tiny_model, images, [0.5] * 5, host_threads=4)
    assert caught.value.index == 2
    with pytest.raises(ValueError, match="host_threads must be >= 1, got 0"):
        predict(tiny_model, [good], [0.5], host_threads=0)


def test_map_images_keeps_order_and_raises_the_first_error() -> None:
    from antema_scale.segment.inference import map_images

    assert map_images(lambda i: i * i, 7, threads=3) == [0, 1, 4, 9, 16, 25, 36]
    assert map_images(lambda i: i, 0, threads=3) == []

    def fails(i: int) -> int:
        if i in (2, 5):
            raise KeyError(i)
        return i

    with pytest.raises(KeyError, match="2"):
        map_images(fails, 6, threads=4)


def test_first_pass_vetoes_large_regions_it_does_not_support() -> None:
    from antema_scale.segment.inference import keep_first_pass_in_unsupported_regions

    first = np.zeros((100, 100), dtype=np.float32)
    first[:40] = _disks((40, 100), 6.0, 20)  # small particles in the top part
    first[50:80, 60:90] = 1.0  # one large particle that both passes see
    second = np.kron(first, np.ones((2, 2), dtype=np.float32))  # the 2x finer pass
    second[110:190, 10:110] = 0.9  # new: 8,000 px of "particle" the first pass did not mark
    kept = keep_first_pass_in_unsupported_regions(first, second, diameter_px=12.0)
    assert kept.shape == second.shape and kept.dtype == np.float32
    assert (kept[110:190, 10:110] < 0.5).all()  # the first pass (empty) is kept there
    np.testing.assert_array_equal(kept[:100], second[:100])  # small particles: second pass
    assert (kept[100:160, 120:180] > 0.5).all()  # a large particle the first pass supports
    # nothing is checked below the size limit (25 particles of 12 px: 2,827 px) ...
    small = second.copy()
    small[110:150, 10:60] = 0.9
    small[150:190, 60:110] = 0.0
    np.testing.assert_array_equal(
        keep_first_pass_in_unsupported_regions(first, small, diameter_px=40.0), small
    )
    # ... or without a measured particle size
    assert keep_first_pass_in_unsupported_regions(first, second, float("nan")) is second


class _FlatIsParticle(torch.nn.Module):
    """A stand-in network that takes a tile without contrast for the inside of a particle."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        span = x.amax(dim=(-2, -1), keepdim=True) - x.amin(dim=(-2, -1), keepdim=True)
        bright = 10.0 * (x - x.amax(dim=(-2, -1), keepdim=True) / 2)
        return torch.where(span < 0.5, torch.full_like(x, 10.0), bright)


def test_predict_keeps_the_first_pass_where_a_finer_tile_is_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import antema_scale.segment.inference as inference

    image = np.zeros((128, 192), dtype=np.float32)
    image[:, :128] = _disks((128, 128), 6.0, 16)  # small particles; the right third empty
    model = SegmentationModel(_FlatIsParticle(), Preprocessing((0.2, 0.8), sigma_px=0.0))  # type: ignore[arg-type]
    # every tile of the first pass holds particles; on the 2x finer grid one holds none
    (pred,) = predict(model, [image], [0.5], tile=128, overlap=32, flips=1)
    assert pred.quality["refine_zoom"] == 2.0  # 6-px particles: a 2x finer second pass
    assert pred.mask[:, 136:].mean() < 0.01  # the empty right part stays background
    iou = (pred.mask & (image > 0)).sum() / (pred.mask | (image > 0)).sum()
    assert iou > 0.7
    # without the veto the finer pass's empty tile comes back as particle
    monkeypatch.setattr(inference, "keep_first_pass_in_unsupported_regions", lambda a, b, d: b)
    (unchecked,) = predict(model, [image], [0.5], tile=128, overlap=32, flips=1)
    assert unchecked.mask[:, 136:].mean() > 0.5
