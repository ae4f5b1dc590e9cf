"""DeepLabV3+ network: shapes for any input size, configs, backbone registry."""

from __future__ import annotations

import pytest
import torch

from antema_scale.segment.network import (
    BACKBONES,
    DeepLabV3Plus,
    NetworkConfig,
    build_network,
)


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (101, 33), (16, 16)])
def test_output_has_input_shape_for_odd_sizes(shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = build_network(NetworkConfig(base_width=4)).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 1, *shape))
    assert out.shape == (2, 1, *shape)
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
    assert build_network(config.to_dict()).config == config
    assert "resnet18" in BACKBONES
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        DeepLabV3Plus(NetworkConfig(backbone="vgg"))


def test_image_pooling_branch_works_in_eval() -> None:
    net = build_network(NetworkConfig(base_width=4, image_pooling=True)).eval()
    with torch.inference_mode():
        assert net(torch.randn(1, 1, 40, 40)).shape == (1, 1, 40, 40)
