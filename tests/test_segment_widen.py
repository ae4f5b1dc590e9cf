"""Growing a trained network to a larger base width keeps what it computes."""

from __future__ import annotations

import pytest
import torch

from antema_scale.segment.network import DeepLabV3Plus, NetworkConfig
from antema_scale.segment.widen import widen_state_dict


def _without_dropout(network: DeepLabV3Plus) -> DeepLabV3Plus:
    for module in network.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # dropout masks differ between widths; everything else must not
    return network


def _trained_looking(config: NetworkConfig, seed: int) -> DeepLabV3Plus:
    """A network with non-trivial batch-norm statistics and affine parameters."""
    torch.manual_seed(seed)
    network = DeepLabV3Plus(config)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
    return network


@pytest.mark.parametrize(
    ("source_config", "target_config"),
    [
        (NetworkConfig(base_width=8), NetworkConfig(base_width=12)),
        (
            NetworkConfig(base_width=4, aspp_rates=(2, 4)),
            NetworkConfig(base_width=8, aspp_rates=(2, 4)),
        ),
        (
            NetworkConfig(base_width=8, output_stride=8),
            NetworkConfig(base_width=16, output_stride=8),
        ),
        (  # the gap head reads the decoder's channels too
            NetworkConfig(base_width=8, gap_channel=True),
            NetworkConfig(base_width=12, gap_channel=True),
        ),
    ],
)
def test_widened_network_computes_what_the_source_did(
    source_config: NetworkConfig, target_config: NetworkConfig
) -> None:
    source = _without_dropout(_trained_looking(source_config, 0))
    torch.manual_seed(1)
    target = _without_dropout(DeepLabV3Plus(target_config))
    target.load_state_dict(widen_state_dict(source, target))
    x = torch.randn(2, 1, 72, 88)
    for train_mode in (False, True):  # running statistics and batch statistics
        source.train(train_mode)
        target.train(train_mode)
        with torch.no_grad():
            torch.testing.assert_close(target(x), source(x), atol=2e-5, rtol=1e-4)
    # the new channels are live (fresh weights), not dead copies of zeros
    stem = target.encoder.stem[0].weight.detach()
    assert float(stem[source_config.base_width :].abs().sum()) > 0


def test_widening_keeps_the_old_weights_and_zeroes_only_new_to_old_paths() -> None:
    source = _trained_looking(NetworkConfig(base_width=8), 0)
    target = DeepLabV3Plus(NetworkConfig(base_width=12))
    state = widen_state_dict(source, target)
    old = source.state_dict()
    conv = "encoder.layer2.0.conv1.weight"  # 8 -> 16 channels becomes 12 -> 24
    torch.testing.assert_close(state[conv][:16, :8], old[conv])
    assert float(state[conv][:16, 8:].abs().sum()) == 0.0  # old outputs, new inputs
    assert float(state[conv][16:].abs().sum()) > 0.0  # new outputs: fresh initialisation
    # the decoder input is [ASPP output | low-level projection]: each old block keeps its place
    pointwise = "decoder.0.3.weight"
    aspp_old, aspp_new = 32, 48
    low_old = old[pointwise].shape[1] - aspp_old
    torch.testing.assert_close(state[pointwise][:aspp_old, :aspp_old], old[pointwise][:, :aspp_old])
    torch.testing.assert_close(
        state[pointwise][:aspp_old, aspp_new : aspp_new + low_old], old[pointwise][:, aspp_old:]
    )
    assert int(state["encoder.stem.1.num_batches_tracked"]) == int(
        old["encoder.stem.1.num_batches_tracked"]
    )


def test_widening_to_a_narrower_network_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state_dict(
            DeepLabV3Plus(NetworkConfig(base_width=12)), DeepLabV3Plus(NetworkConfig(base_width=8))
        )
