"""Grow a trained network to a larger base width without changing what it computes.

A fine-tune that starts from a trained model of base width ``w`` and runs at a width
``W > w`` (``antema-scale train --init-model M --width W``) starts from the old model's
function exactly: every old channel keeps its place (in the concatenations of the ASPP
branches and of the decoder input, the block it belongs to) and its weights, the weights
from new channels into old ones are zero, and the new channels keep the fresh
initialisation of the wider network. So the old outputs never see the new channels until
training moves those zero weights, and training starts from the old predictions with
more capacity (the idea of Net2Net's function-preserving growth, Chen et al. 2016, done
with zeros instead of copies).
"""

from __future__ import annotations

import numpy as np
import torch

from antema_scale.segment.network import DeepLabV3Plus

__all__ = ["widen_state_dict"]


def _block_positions(old_sizes: list[int], new_sizes: list[int]) -> np.ndarray:
    """Positions in a concatenation of blocks of ``new_sizes`` channels of the channels of
    the same concatenation with ``old_sizes`` (each old block at the start of its new one)."""
    positions, start = [], 0
    for old, new in zip(old_sizes, new_sizes, strict=True):
        positions.append(np.arange(start, start + old))
        start += new
    return np.concatenate(positions)


def _concat_blocks(network: DeepLabV3Plus) -> dict[tuple[str, int], list[int]]:
    """Block sizes of the tensors whose channels are concatenations, by (parameter, dim)."""
    aspp = network.aspp.project[0][0].out_channels
    n_branches = network.aspp.project[0][0].in_channels // aspp
    low = network.low_project[0].out_channels
    blocks: dict[tuple[str, int], list[int]] = {("aspp.project.0.0.weight", 1): [aspp] * n_branches}
    for name in ("weight", "bias", "running_mean", "running_var"):  # depthwise + BN on the concat
        blocks[(f"decoder.0.1.{name}", 0)] = [aspp, low]
    blocks[("decoder.0.0.weight", 0)] = [aspp, low]
    blocks[("decoder.0.3.weight", 1)] = [aspp, low]
    return blocks


def widen_state_dict(source: DeepLabV3Plus, target: DeepLabV3Plus) -> dict[str, torch.Tensor]:
    """The state of ``target`` (a wider copy of ``source``'s architecture) with ``source``'s
    weights embedded so that ``target`` computes exactly what ``source`` does.

    Parameters
    ----------
    source : DeepLabV3Plus
        The trained network.
    target : DeepLabV3Plus
        A freshly initialised network whose configuration differs from ``source``'s at
        most in ``base_width`` (>= the source's), ``output_stride``, the gap channel and the
        detail refinement (which the source may lack).

    Returns
    -------
    dict
        A state dict for ``target`` (``target.load_state_dict(...)``); keys that
        ``source`` lacks (a new gap head or detail refinement) keep ``target``'s values.

    Raises
    ------
    ValueError
        A weight of ``source`` is larger than ``target``'s in some dimension.

    Examples
    --------
    >>> from antema_scale.segment.network import NetworkConfig
    >>> small = DeepLabV3Plus(NetworkConfig(base_width=8)).eval()
    >>> wide = DeepLabV3Plus(NetworkConfig(base_width=12)).eval()
    >>> _ = wide.load_state_dict(widen_state_dict(small, wide))
    >>> x = torch.randn(1, 1, 64, 64)
    >>> bool(torch.allclose(small(x), wide(x), atol=1e-5))
    True
    """
    old_blocks, new_blocks = _concat_blocks(source), _concat_blocks(target)
    old_state = source.state_dict()
    state = {key: value.clone() for key, value in target.state_dict().items()}
    for key, old in old_state.items():
        if key not in state:
            continue
        new = state[key]
        if old.dim() != new.dim() or any(o > n for o, n in zip(old.shape, new.shape, strict=True)):
            raise ValueError(
                f"cannot widen {key}: source shape {tuple(old.shape)}, target {tuple(new.shape)}"
            )
        if old.dim() == 0:  # BatchNorm's num_batches_tracked
            state[key] = old.clone()
            continue
        index = []
        for dim in range(old.dim()):
            if (key, dim) in new_blocks:
                index.append(_block_positions(old_blocks[(key, dim)], new_blocks[(key, dim)]))
            else:
                index.append(np.arange(old.shape[dim]))
        if old.dim() > 1 and new.shape[1] > old.shape[1]:
            new[torch.from_numpy(index[0])] = 0.0  # old outputs read no new input channel
        new[tuple(torch.from_numpy(i) for i in np.ix_(*index))] = old
    return state
