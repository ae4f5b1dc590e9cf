"""DeepLabV3+ network: shapes for any input size, configs, backbone registry."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from antema_scale.segment.network import (
    BACKBONES,
    GAP_PRIOR_LOGIT,
    DeepLabV3Plus,
    NetworkConfig,
    build_network,
    particle_not_gap_logits,
)


@pytest.mark.parametrize(("detail", "gap"), [(0, False), (4, False), (4, True)])
@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (101, 33), (16, 16)])
def test_output_has_input_shape_for_odd_sizes(
    shape: tuple[int, int], detail: int, gap: bool
) -> None:
    torch.manual_seed(0)
    config = NetworkConfig(base_width=4, detail_channels=detail, gap_channel=gap)
    net = build_network(config).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 1, *shape))
    assert out.shape == (2, 1, *shape)
    if gap:  # training mode: the particle and the gap channel, both at the input size
        assert net.train()(torch.randn(2, 1, *shape)).shape == (2, 2, *shape)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_width_scales_parameters_like_resnet18() -> None:
    small = sum(p.numel() for p in build_network(NetworkConfig(base_width=8)).parameters())
    large = sum(p.numel() for p in build_network(NetworkConfig(base_width=16)).parameters())
    # Convolution weights dominate and grow with width squared.
    assert 3.5 < large / small < 4.1


def test_encoder_layout_is_resnet18() -> None:
    net = build_network(NetworkConfig(base_width=8))
    blocks = [len(getattr(net.encoder, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [2, 2, 2, 2]
    assert net.encoder.out_channels == 64
    assert net.encoder.low_level_channels == 8


def test_config_round_trip_and_unknown_backbone() -> None:
    config = NetworkConfig(base_width=12, aspp_rates=(3, 6), image_pooling=True)
    assert NetworkConfig.from_dict(config.to_dict()) == config
    detailed = NetworkConfig(base_width=12, detail_channels=6)
    assert NetworkConfig.from_dict(detailed.to_dict()) == detailed
    older = {k: v for k, v in config.to_dict().items() if k != "detail_channels"}
    assert NetworkConfig.from_dict(older) == config  # model files from before the option
    assert build_network(config.to_dict()).config == config
    assert "resnet18" in BACKBONES
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        DeepLabV3Plus(NetworkConfig(backbone="vgg"))


@pytest.mark.parametrize("shape", [(37, 53), (64, 48)])
def test_output_stride_8_keeps_the_weights_and_samples_the_same_features_densely(
    shape: tuple[int, int],
) -> None:
    torch.manual_seed(1)
    coarse = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 3))).eval()
    dense = build_network(replace(coarse.config, output_stride=8)).eval()
    dense.load_state_dict(coarse.state_dict())  # same parameter names and shapes
    x = torch.randn(1, 1, *shape)
    with torch.inference_mode():
        deep16, deep8 = coarse.encoder(x)[1], dense.encoder(x)[1]
        out = dense(x)
    assert deep16.shape[-2:] == tuple((n + 15) // 16 for n in shape)
    assert deep8.shape[-2:] == tuple((n + 7) // 8 for n in shape)
    if shape == (64, 48):  # divisible sizes: every second stride-8 feature is a stride-16 one
        torch.testing.assert_close(deep8[..., ::2, ::2], deep16, atol=1e-5, rtol=1e-5)
        with torch.inference_mode():
            torch.testing.assert_close(
                dense.aspp(deep8)[..., ::2, ::2], coarse.aspp(deep16), atol=1e-5, rtol=1e-5
            )
    assert out.shape == (1, 1, *shape)
    assert NetworkConfig.from_dict(dense.config.to_dict()).output_stride == 8
    older = {k: v for k, v in coarse.config.to_dict().items() if k != "output_stride"}
    assert NetworkConfig.from_dict(older).output_stride == 16  # files from before the option
    with pytest.raises(ValueError, match="output_stride must be one of"):
        build_network(NetworkConfig(base_width=4, output_stride=4))


def test_particle_not_gap_masks_particle_where_no_gap_is_called() -> None:
    particle = torch.tensor([-8.0, -1.0, 0.5, 1.5, 4.0, 40.0, 3.0])
    gap = torch.tensor([-3.0, 0.5, -20.0, -2.0, 1.0, -40.0, 8.0])
    got = particle_not_gap_logits(particle, gap)
    p, g = torch.sigmoid(particle), torch.sigmoid(gap)
    assert torch.equal(got > 0, (p > 0.5) & (g < 0.5))
    torch.testing.assert_close(torch.sigmoid(got), torch.minimum(p, 1 - g))
    assert float(got[2]) == 0.5  # no gap: the particle channel's own confidence
    assert float(got[6]) == -8.0  # a confident gap cuts a confident particle


def test_gap_channel_trains_on_two_outputs_and_predicts_one() -> None:
    torch.manual_seed(2)
    plain = build_network(NetworkConfig(base_width=4)).eval()
    gapped = build_network(NetworkConfig(base_width=4, gap_channel=True))
    missing, unexpected = gapped.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"gap_head"}
    x = torch.randn(2, 1, 48, 40)
    gapped.eval()
    with torch.inference_mode():
        both, before = gapped(x), plain(x)
    assert both.shape == (2, 1, 48, 40)
    # a new gap head predicts "no gap" everywhere: the particle probability hardly moves
    shift = (torch.sigmoid(both) - torch.sigmoid(before)).abs().max()
    assert float(shift) <= float(torch.sigmoid(torch.tensor(GAP_PRIOR_LOGIT))) + 1e-6
    gapped.train()
    assert gapped(x).shape == (2, 2, 48, 40)  # particle, gap
    assert NetworkConfig.from_dict(gapped.config.to_dict()).gap_channel is True
    with pytest.raises(ValueError, match="gap_channel needs num_classes=1"):
        build_network(NetworkConfig(base_width=4, num_classes=2, gap_channel=True))


def test_image_pooling_branch_works_in_eval() -> None:
    net = build_network(NetworkConfig(base_width=4, image_pooling=True)).eval()
    with torch.inference_mode():
        assert net(torch.randn(1, 1, 40, 40)).shape == (1, 1, 40, 40)


def test_detail_refinement_starts_as_a_no_op_and_then_sharpens_at_half_resolution() -> None:
    torch.manual_seed(2)
    plain = build_network(NetworkConfig(base_width=4)).eval()
    detailed = build_network(NetworkConfig(base_width=4, detail_channels=6)).eval()
    missing, unexpected = detailed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("detail.") for k in missing)
    x = torch.randn(2, 1, 48, 40)
    with torch.inference_mode():
        # untrained, the refinement adds zero: the decoder's logits, taken to half
        # resolution and then to full (two bilinear steps instead of one)
        low, deep = plain.encoder(x)
        context = F.interpolate(plain.aspp(deep), size=low.shape[-2:], mode="bilinear")
        logits = plain.head(plain.decoder(torch.cat([context, plain.low_project(low)], 1)))
        half = F.interpolate(logits, size=(24, 20), mode="bilinear")
        expected = F.interpolate(half, size=(48, 40), mode="bilinear")
        torch.testing.assert_close(detailed(x), expected)
        # ... and close to the plain network's one-step upsampling
        assert float((detailed(x) - plain(x)).abs().max()) < 0.1 * float(plain(x).abs().max())
        assert detailed.detail is not None
        torch.nn.init.normal_(detailed.detail.delta.weight)
        changed = detailed(x) - expected
    assert float(changed.abs().mean()) > 1e-3  # a trained refinement does act
    params = sum(p.numel() for p in detailed.detail.parameters())
    assert params < 0.02 * sum(p.numel() for p in plain.parameters())
