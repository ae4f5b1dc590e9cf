"""DeepLabV3+ with a ResNet-18 encoder, in plain torch (no torchvision).

The encoder is the ResNet-18 layout (four stages of two BasicBlocks each) with a
configurable base width: ``base_width=64`` is the standard ResNet-18, smaller widths give
the same topology with ``(base_width / 64) ** 2`` of the compute. The last stage is dilated
(rate 2) so that the encoder has output stride 16, as in DeepLabV3+ (Chen et al., ECCV 2018);
``output_stride=8`` also trades stage 3's stride for dilation (rates 2 and 4) and doubles
the ASPP rates, as the DeepLab papers do for denser features at about twice the compute.
The weights are the same at either stride, so a model trained at 16 can be fine-tuned at 8.
The ASPP and decoder use atrous depthwise-separable convolutions.

Two design choices differ from the DeepLabV3+ paper. The ASPP image-pooling branch is off
by default (``image_pooling=False``). A global-average-pooled branch makes every output
pixel depend on the whole input, so a tiled prediction of a large micrograph could never
match an untiled one; without it the network is translation-equivariant (up to its
receptive field) and tiles blend seamlessly. And an optional full-resolution refinement
(``detail_channels > 0``, :class:`DetailRefinement`; off by default): the DeepLabV3+
decoder predicts at a quarter of the input resolution, which leaves particles only a few
pixels across with blurred, eroded outlines; the refinement adds a correction computed on
the full-resolution image.

New backbones register themselves in :data:`BACKBONES` with :func:`register_backbone`.

:class:`NetworkEnsemble` averages the logits of several such networks trained apart
(different seeds or data); a model file may hold one. The mean only beats its members
where their errors differ: for the shipped model and a sibling it was level (model card).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import overload

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "BACKBONES",
    "DeepLabV3Plus",
    "DetailRefinement",
    "Encoder",
    "EnsembleConfig",
    "GAP_PRIOR_LOGIT",
    "NetworkConfig",
    "NetworkEnsemble",
    "OUTPUT_STRIDES",
    "particle_not_gap_logits",
    "ResNetEncoder",
    "build_network",
    "register_backbone",
]

#: Encoder output strides a :class:`NetworkConfig` may ask for.
OUTPUT_STRIDES = (16, 8)

#: Initial bias of the gap head (sigmoid 0.25 %): a new head changes no prediction.
GAP_PRIOR_LOGIT = -6.0


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a :class:`DeepLabV3Plus` network (stored in model files).

    Parameters
    ----------
    backbone : str
        Name of a backbone in :data:`BACKBONES` (``"resnet18"``).
    base_width : int
        Channels of the first ResNet stage; 64 is the standard ResNet-18.
    in_channels : int
        Input channels (1: one grey channel).
    num_classes : int
        Output channels; 1 means one particle logit (sigmoid = particle probability).
    aspp_rates : tuple of int
        Dilation rates of the atrous ASPP branches at output stride 16 (at stride 8 they
        are doubled, so that each branch spans the same image area).
    image_pooling : bool
        Whether the ASPP has the global image-pooling branch (breaks tiling consistency).
    detail_channels : int
        Channels of the full-resolution :class:`DetailRefinement`; 0 (default) leaves it
        out, as in the DeepLabV3+ paper.
    output_stride : int
        Ratio of input size to the encoder's deep feature map: 16 (default) or 8 (denser
        deep features for small particles, about twice the compute).
    gap_channel : bool
        Whether the network also predicts the narrow background gaps between touching
        particles (:class:`DeepLabV3Plus` explains how the two are combined).
    """

    backbone: str = "resnet18"
    base_width: int = 16
    in_channels: int = 1
    num_classes: int = 1
    aspp_rates: tuple[int, ...] = field(default=(6, 12, 18))
    image_pooling: bool = False
    detail_channels: int = 0
    output_stride: int = 16
    gap_channel: bool = False

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON- and ``weights_only``-safe)."""
        data = asdict(self)
        data["aspp_rates"] = list(self.aspp_rates)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        values = dict(data)
        if "aspp_rates" in values:
            values["aspp_rates"] = tuple(int(r) for r in values["aspp_rates"])  # type: ignore[union-attr]
        return cls(**values)  # type: ignore[arg-type]


class Encoder(nn.Module):
    """Interface of a backbone: returns (low-level features at stride 4, deep features).

    Attributes
    ----------
    low_level_channels : int
        Channels of the stride-4 feature map.
    out_channels : int
        Channels of the deep (stride-16 or stride-8) feature map.
    """

    low_level_channels: int
    out_channels: int


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with a residual connection.

    ``first_dilation`` (default: ``dilation``) is the dilation of the first convolution,
    so that a stage that trades its stride for dilation keeps its first convolution's
    sampling (as the DeepLab papers do).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        dilation: int = 1,
        first_dilation: int | None = None,
    ) -> None:
        super().__init__()
        first = dilation if first_dilation is None else first_dilation
        self.conv1 = nn.Conv2d(
            in_ch, out_ch, 3, stride=stride, padding=first, dilation=first, bias=False
        )
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity, inplace=True)


class ResNetEncoder(Encoder):
    """ResNet encoder with BasicBlocks, output stride 16 (last stage dilated) or 8.

    Parameters
    ----------
    in_channels : int
        Input channels.
    base_width : int
        Channels of stage 1; stages have ``w, 2w, 4w, 8w`` channels.
    blocks : tuple of int
        BasicBlocks per stage; ``(2, 2, 2, 2)`` is ResNet-18.
    output_stride : int
        16: stage 4 dilated (rate 2); 8: stage 3 trades its stride for dilation (rate 2
        after its first convolution) and stage 4 doubles its rate (4). The weights have the
        same shapes either way, and at 8 the deep features on every second row and column
        equal those at 16 (the "algorithme à trous"): only the decoder sees more of them.
    """

    def __init__(
        self,
        in_channels: int,
        base_width: int,
        blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        output_stride: int = 16,
    ) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        w = base_width
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.layer1 = self._stage(w, w, blocks[0], stride=1, dilation=1)
        self.layer2 = self._stage(w, 2 * w, blocks[1], stride=2, dilation=1)
        if output_stride == 16:
            self.layer3 = self._stage(2 * w, 4 * w, blocks[2], stride=2, dilation=1)
            self.layer4 = self._stage(4 * w, 8 * w, blocks[3], stride=1, dilation=2)
        else:
            self.layer3 = self._stage(2 * w, 4 * w, blocks[2], stride=1, dilation=2, first=1)
            self.layer4 = self._stage(4 * w, 8 * w, blocks[3], stride=1, dilation=4)
        self.low_level_channels = w
        self.out_channels = 8 * w

    @staticmethod
    def _stage(
        in_ch: int, out_ch: int, n: int, stride: int, dilation: int, first: int | None = None
    ) -> nn.Sequential:
        layers: list[nn.Module] = [
            BasicBlock(in_ch, out_ch, stride=stride, dilation=dilation, first_dilation=first)
        ]
        layers += [BasicBlock(out_ch, out_ch, dilation=dilation) for _ in range(n - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        deep = self.layer4(self.layer3(self.layer2(low)))
        return low, deep


#: Backbone factories by name: ``factory(in_channels, base_width, output_stride) -> Encoder``.
BACKBONES: dict[str, Callable[[int, int, int], Encoder]] = {}


def register_backbone(name: str, factory: Callable[[int, int, int], Encoder]) -> None:
    """Make a backbone available to :class:`NetworkConfig` by ``name``."""
    BACKBONES[name] = factory


register_backbone("resnet18", lambda c, w, s: ResNetEncoder(c, w, (2, 2, 2, 2), s))
register_backbone("resnet10", lambda c, w, s: ResNetEncoder(c, w, (1, 1, 1, 1), s))


class SeparableConv(nn.Sequential):
    """Atrous depthwise-separable 3x3 convolution + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(
                in_ch, in_ch, 3, padding=dilation, dilation=dilation, groups=in_ch, bias=False
            ),
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


def _conv1x1_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with separable atrous branches."""

    def __init__(
        self, in_ch: int, out_ch: int, rates: tuple[int, ...], image_pooling: bool
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv1x1_bn_relu(in_ch, out_ch)] + [SeparableConv(in_ch, out_ch, r) for r in rates]
        )
        self.pooling = _conv1x1_bn_relu(in_ch, out_ch) if image_pooling else None
        n = len(self.branches) + (1 if image_pooling else 0)
        self.project = nn.Sequential(_conv1x1_bn_relu(n * out_ch, out_ch), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        if self.pooling is not None:
            pooled = self.pooling(F.adaptive_avg_pool2d(x, 1))
            outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class DetailRefinement(nn.Module):
    """Correction of the decoder's logits computed at the full input resolution.

    The decoder's features (stride 4) are projected to ``channels`` and upsampled; the
    image passes one 3x3 convolution at full resolution; both, with the upsampled coarse
    logits, go through a separable 3x3 convolution and a 1x1 convolution whose output is
    *added* to the coarse logits. That last convolution starts at zero, so a network that
    gains the refinement predicts exactly what it did before (fine-tuning starts from the
    old model's accuracy).

    Parameters
    ----------
    in_channels : int
        Channels of the network input.
    decoder_channels : int
        Channels of the decoder's stride-4 features.
    channels : int
        Width of the full-resolution layers (their cost grows with the image area).
    num_classes : int
        Logit channels.
    """

    def __init__(
        self, in_channels: int, decoder_channels: int, channels: int, num_classes: int
    ) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.context = _conv1x1_bn_relu(decoder_channels, channels)
        self.fuse = SeparableConv(2 * channels + num_classes, channels)
        self.delta = nn.Conv2d(channels, num_classes, 1)
        nn.init.zeros_(self.delta.weight)
        nn.init.zeros_(self.delta.bias)

    def forward(
        self, x: torch.Tensor, features: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        """Refined logits at half the size of ``x`` from the decoder's ``features``/``logits``."""
        image = self.image(x)
        size = image.shape[-2:]
        context = F.interpolate(
            self.context(features), size=size, mode="bilinear", align_corners=False
        )
        coarse = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        joined = torch.cat([image, context, coarse], dim=1)
        return coarse + self.delta(self.fuse(joined))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ segmentation network; input ``(N, C, H, W)``, output logits ``(N, K, H, W)``.

    Any ``H, W`` works (odd sizes included): the decoder upsamples to the low-level
    feature size and the head back to exactly the input size.

    With ``config.gap_channel`` a second 1x1 head predicts the background gaps narrower
    than a few pixels between touching particles. In training mode the output has both
    channels (particle, gap), each with its own loss; in eval mode it
    is the single logit of "particle and not gap" (:func:`particle_not_gap_logits`), so
    inference code sees one particle logit as for any other network.

    Parameters
    ----------
    config : NetworkConfig
        Architecture.
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config or NetworkConfig()
        if self.config.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.config.backbone!r}; known: {sorted(BACKBONES)}"
            )
        stride = self.config.output_stride
        if stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {stride}")
        w = self.config.base_width
        self.encoder = BACKBONES[self.config.backbone](self.config.in_channels, w, stride)
        aspp_ch = 4 * w
        low_ch = max(8, (3 * w) // 4)
        rates = tuple(r * 16 // stride for r in self.config.aspp_rates)
        self.aspp = ASPP(self.encoder.out_channels, aspp_ch, rates, self.config.image_pooling)
        self.low_project = _conv1x1_bn_relu(self.encoder.low_level_channels, low_ch)
        self.decoder = nn.Sequential(
            SeparableConv(aspp_ch + low_ch, aspp_ch), SeparableConv(aspp_ch, aspp_ch)
        )
        self.head = nn.Conv2d(aspp_ch, self.config.num_classes, 1)
        self.gap_head: nn.Conv2d | None = None
        if self.config.gap_channel:
            if self.config.num_classes != 1:
                raise ValueError("gap_channel needs num_classes=1 (one particle logit)")
            self.gap_head = nn.Conv2d(aspp_ch, 1, 1)
            nn.init.zeros_(self.gap_head.weight)  # starts as "no gaps": p(gap) = 0.25 %
            nn.init.constant_(self.gap_head.bias, GAP_PRIOR_LOGIT)
        self.detail: DetailRefinement | None = None
        if self.config.detail_channels > 0:
            self.detail = DetailRefinement(
                self.config.in_channels,
                aspp_ch,
                self.config.detail_channels,
                self.config.num_classes,
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low, deep = self.encoder(x)
        context = self.aspp(deep)
        context = F.interpolate(context, size=low.shape[-2:], mode="bilinear", align_corners=False)
        fused = self.decoder(torch.cat([context, self.low_project(low)], dim=1))
        logits = self.head(fused)
        if self.detail is not None:
            logits = self.detail(x, fused, logits)
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        if self.gap_head is None:
            return logits
        gap = F.interpolate(self.gap_head(fused), size=size, mode="bilinear", align_corners=False)
        if self.training:
            return torch.cat([logits, gap], dim=1)
        return particle_not_gap_logits(logits, gap)


def particle_not_gap_logits(particle: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Logit of "particle and not gap", ``min(p, 1 - g)``, from the two logits (float32).

    The mask ``> 0`` is exactly "particle probability above 0.5 and gap probability
    below 0.5": the gap channel only cuts where it calls a gap, and leaves the particle
    outlines elsewhere as the particle channel draws them. (The product ``p (1 - g)``
    also erodes outlines where the gap channel is unsure: validation, session 10.)
    """
    return torch.minimum(particle.float(), -gap.float())


@dataclass(frozen=True)
class EnsembleConfig:
    """Architecture of a :class:`NetworkEnsemble` (stored in model files).

    Parameters
    ----------
    members : tuple of NetworkConfig
        The architecture of each member, in order (at least two).
    """

    members: tuple[NetworkConfig, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form (JSON- and ``weights_only``-safe)."""
        return {"members": [member.to_dict() for member in self.members]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EnsembleConfig:
        """Inverse of :meth:`to_dict`."""
        members = data["members"]
        if not isinstance(members, list):
            raise TypeError(f"'members' must be a list of network configs, got {members!r}")
        return cls(tuple(NetworkConfig.from_dict(member) for member in members))


class NetworkEnsemble(nn.Module):
    """Several networks on the same input; output = the mean of their logits.

    Averaging logits (rather than probabilities) is what the flip averaging of inference
    does too, so an ensemble of ``n`` members with ``v`` views per tile averages ``n * v``
    logit maps, at ``n`` times the cost of one member.

    Parameters
    ----------
    members : sequence of DeepLabV3Plus
        At least two networks with the same input and output channels.

    Examples
    --------
    >>> import torch
    >>> from antema_scale.segment.network import NetworkConfig, NetworkEnsemble, build_network
    >>> small = NetworkConfig(base_width=8)
    >>> ensemble = NetworkEnsemble([build_network(small), build_network(small)]).eval()
    >>> ensemble(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1, 64, 64])
    """

    def __init__(self, members: Sequence[DeepLabV3Plus]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two networks, got {len(members)}")
        configs = tuple(member.config for member in members)
        channels = {(config.in_channels, config.num_classes) for config in configs}
        if len(channels) > 1:
            raise ValueError(
                "ensemble members must have the same input and output channels, got "
                f"(in_channels, num_classes) = {sorted(channels)}"
            )
        self.members = nn.ModuleList(members)
        self.config = EnsembleConfig(configs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.members[0](x)
        for member in self.members[1:]:
            total = total + member(x)
        return total / len(self.members)


@overload
def build_network(config: NetworkConfig | None = None) -> DeepLabV3Plus: ...
@overload
def build_network(config: EnsembleConfig) -> NetworkEnsemble: ...
@overload
def build_network(config: dict[str, object]) -> DeepLabV3Plus | NetworkEnsemble: ...
def build_network(
    config: NetworkConfig | EnsembleConfig | dict[str, object] | None = None,
) -> DeepLabV3Plus | NetworkEnsemble:
    """Build a network from a config object or its ``to_dict`` form.

    A config with ``members`` (:class:`EnsembleConfig`) builds a :class:`NetworkEnsemble`
    of freshly initialised members; anything else a :class:`DeepLabV3Plus`.
    """
    if isinstance(config, dict):
        config = (EnsembleConfig if "members" in config else NetworkConfig).from_dict(config)
    if isinstance(config, EnsembleConfig):
        return NetworkEnsemble([DeepLabV3Plus(member) for member in config.members])
    return DeepLabV3Plus(config)
