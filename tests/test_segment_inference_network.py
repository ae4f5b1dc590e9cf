"""The inference copy of a network: same outputs, batch norm folded, cached per model."""

from __future__ import annotations

import pytest
import torch

from antema_scale.segment import load_model
from antema_scale.segment.inference_network import inference_network
from antema_scale.segment.model_file import SegmentationModel
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.preprocess import Preprocessing


def _batch_norms(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())


@pytest.mark.parametrize("shape", [(1, 1, 64, 96), (2, 1, 128, 128), (1, 1, 160, 64)])
def test_folded_channels_last_network_gives_the_same_logits(shape: tuple[int, ...]) -> None:
    network = load_model(device="cpu").network
    before = {k: v.clone() for k, v in network.state_dict().items()}
    fast = inference_network(network)
    assert _batch_norms(network) > 0 and _batch_norms(fast) == 0  # every BN folded away
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), network(x), atol=1e-4, rtol=1e-4)
    after = network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is untouched


class _DataDependent(torch.nn.Module):
    """Not symbolically traceable (Python control flow on tensor values)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return y if float(y.mean()) > 0 else -y


def test_untraceable_networks_are_used_as_they_are() -> None:
    network = _DataDependent().eval()
    fast = inference_network(network)
    assert fast is not network and _batch_norms(fast) == 1
    x = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), network(x))


def test_the_model_builds_its_inference_network_once_per_network_and_device() -> None:
    model = SegmentationModel(
        build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4))).eval(),
        Preprocessing((0.2, 0.8), sigma_px=1.0),
    )
    first = model.inference_network()
    assert model.inference_network() is first
    assert model.to("cpu").inference_network() is first
    model.network = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4))).eval()
    assert model.inference_network() is not first


def test_the_detail_refinement_folds_too() -> None:
    torch.manual_seed(5)
    network = build_network(NetworkConfig(base_width=4, detail_channels=4)).eval()
    assert network.detail is not None
    torch.nn.init.normal_(network.detail.delta.weight)
    for module in network.modules():  # non-trivial statistics, so folding matters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    fast = inference_network(network)
    assert _batch_norms(fast) == 0
    x = torch.randn(2, 1, 72, 56)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), network(x), atol=1e-4, rtol=1e-4)
