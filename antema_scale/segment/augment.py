"""Training samples: random tiles and whole-image views with augmentation.

Images arrive already prepared (on the working grid, standardised; see
:mod:`antema_scale.segment.preprocess`). Each sample is a ``tile x tile`` view:

* geometric: a random crop (or, with probability ``whole_image``, the whole image
  downsized to one tile as in the paper), scaled by a log-uniform factor, rotated by a
  random angle, flipped in x and/or y — done in one ``grid_sample`` per sample with
  reflection padding;
* intensity: contrast gain, brightness offset, a smooth uneven background (``shading``:
  a random tilt plus a few broad bumps, as from uneven illumination or a support film of
  varying thickness), additive Gaussian noise and, with probability ``invert``, polarity
  inversion (bright-field <-> HAADF look).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["Augmentation", "PreparedImage", "batch_views", "draw_images", "sample_batch"]


@dataclass(frozen=True)
class Augmentation:
    """Augmentation ranges (stored in the model metadata).

    Parameters
    ----------
    tile : int
        Side of a training sample in pixels.
    scale : tuple of float
        Log-uniform range of the zoom (output px per working px).
    rotate : bool
        Random rotation by any angle.
    flip : bool
        Random x and y reflection.
    whole_image : float
        Probability that a sample is the whole image downsized to one tile.
    contrast : tuple of float
        Range of the multiplicative gain on the standardised image.
    brightness : float
        Half-range of the additive offset (in standard deviations).
    noise : float
        Maximum std of additive Gaussian noise (drawn uniformly from 0).
    invert : float
        Probability of polarity inversion.
    shading : float
        Largest amplitude (in standard deviations of the prepared image) of the smooth
        background added to half of the samples; 0 turns it off.
    """

    tile: int = 256
    scale: tuple[float, float] = (0.7, 1.4)
    rotate: bool = True
    flip: bool = True
    whole_image: float = 0.1
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.4
    noise: float = 0.4
    invert: float = 0.3
    shading: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form for metadata."""
        data = asdict(self)
        data["scale"] = list(self.scale)
        data["contrast"] = list(self.contrast)
        return data


@dataclass
class PreparedImage:
    """An image on the working grid (float32, standardised) with its bool mask."""

    image: np.ndarray
    mask: np.ndarray
    image_id: str
    source: str


def smooth_background(tile: int, amplitude: float, rng: np.random.Generator) -> torch.Tensor:
    """A smooth random field of shape ``(1, tile, tile)`` whose largest magnitude is ``amplitude``.

    The sum of a random tilt and a bicubically upsampled 2x2 to 4x4 grid of random values:
    features at least a quarter of the tile across, far broader than the particle edges
    the network has to find.
    """
    cells = int(rng.integers(2, 5))
    coarse = torch.from_numpy(rng.normal(size=(1, 1, cells, cells)).astype(np.float32))
    field = F.interpolate(coarse, size=(tile, tile), mode="bicubic", align_corners=True)[0]
    ramp = torch.linspace(-1.0, 1.0, tile)
    gy, gx = rng.normal(size=2)
    field = field + float(gy) * ramp[None, :, None] + float(gx) * ramp[None, None, :]
    return field * (amplitude / max(float(field.abs().max()), 1e-6))


def _view(
    prepared: PreparedImage, aug: Augmentation, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented (image, mask) tile as float tensors of shape (1, tile, tile)."""
    h, w = prepared.image.shape
    tile = aug.tile
    whole = rng.random() < aug.whole_image and max(h, w) > tile
    if whole:
        zoom = tile / max(h, w)
        cy, cx = (h - 1) / 2, (w - 1) / 2
    else:
        zoom = math.exp(rng.uniform(math.log(aug.scale[0]), math.log(aug.scale[1])))
        half = tile / zoom / 2
        cy = rng.uniform(min(half, h / 2), max(h - half, h / 2)) - 0.5
        cx = rng.uniform(min(half, w / 2), max(w - half, w / 2)) - 0.5
    angle = rng.uniform(0, 2 * math.pi) if aug.rotate and not whole else 0.0
    sy = -1.0 if aug.flip and rng.random() < 0.5 else 1.0
    sx = -1.0 if aug.flip and rng.random() < 0.5 else 1.0
    # Output pixel offsets (from the tile centre) -> source pixel positions.
    offsets = torch.arange(tile, dtype=torch.float32) - (tile - 1) / 2
    oy, ox = torch.meshgrid(offsets * sy / zoom, offsets * sx / zoom, indexing="ij")
    cos, sin = math.cos(angle), math.sin(angle)
    src_y = cy + cos * oy - sin * ox
    src_x = cx + sin * oy + cos * ox
    # Sample from the smallest window that holds every source position (much cheaper than
    # the whole image); reflection padding needs the whole image when a position is outside.
    y0, y1 = math.floor(float(src_y.min())), math.ceil(float(src_y.max()))
    x0, x1 = math.floor(float(src_x.min())), math.ceil(float(src_x.max()))
    if y0 >= 0 and x0 >= 0 and y1 <= h - 1 and x1 <= w - 1:
        image_win = prepared.image[y0 : y1 + 1, x0 : x1 + 1]
        mask_win = prepared.mask[y0 : y1 + 1, x0 : x1 + 1]
        src_y, src_x = src_y - y0, src_x - x0
    else:
        image_win, mask_win = prepared.image, prepared.mask
    wh, ww = image_win.shape
    # grid_sample with align_corners=True: -1 / +1 are the first / last pixel centres.
    grid = torch.stack(
        [2 * src_x / max(ww - 1, 1) - 1, 2 * src_y / max(wh - 1, 1) - 1], dim=-1
    ).unsqueeze(0)
    stack = torch.from_numpy(np.stack([image_win, mask_win.astype(np.float32)])).unsqueeze(0)
    out = F.grid_sample(
        stack, grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )[0]
    image, mask = out[0:1], (out[1:2] > 0.5).float()
    gain = rng.uniform(*aug.contrast)
    offset = rng.uniform(-aug.brightness, aug.brightness)
    image = image * gain + offset
    if aug.shading > 0 and rng.random() < 0.5:
        image = image + smooth_background(tile, rng.uniform(0, aug.shading), rng)
    if aug.noise > 0:
        image = image + torch.from_numpy(
            rng.normal(0.0, rng.uniform(0, aug.noise), image.shape).astype(np.float32)
        )
    if rng.random() < aug.invert:
        image = -image
    return image, mask


def sample_batch(
    images: Sequence[PreparedImage],
    batch_size: int,
    aug: Augmentation,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of augmented tiles: images ``(N, 1, T, T)`` float32, masks ``(N, 1, T, T)`` 0/1.

    ``weights`` (summing to 1) sets how often each image is drawn (default uniform). The
    same as :func:`batch_views` of :func:`draw_images` (which tells which images were drawn).
    """
    return batch_views(images, draw_images(images, batch_size, rng, weights), aug, rng)


def draw_images(
    images: Sequence[PreparedImage],
    batch_size: int,
    rng: np.random.Generator,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of the ``batch_size`` images a batch is cut from (drawn with replacement)."""
    if not images:
        raise ValueError("no training images")
    return rng.choice(len(images), size=batch_size, p=weights)


def batch_views(
    images: Sequence[PreparedImage],
    picks: np.ndarray,
    aug: Augmentation,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented tile of each picked image: images and 0/1 masks ``(N, 1, T, T)``."""
    views = [_view(images[i], aug, rng) for i in picks]
    return torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])
