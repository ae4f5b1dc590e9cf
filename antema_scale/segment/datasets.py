"""Labelled images for training and evaluation: folders, EMPS, synthetic micrographs.

Every source yields :class:`LabelledImage` objects (raw grey image, boolean particle mask,
pixel size in nm/px, an id and the name of its source). Splits are fixed and seeded:
:func:`split_ids` assigns each id to ``train``/``val``/``test`` (60/20/20 by default) from a
seeded permutation of the sorted ids, so the same ids are held out on every machine and
every run.

Real images without a calibration (the EMPS dataset) get a *nominal* pixel size (see
:data:`EMPS_NOMINAL_PIXEL_SIZE_NM`): a value inside the model's working range, so they are
fed to the network at their native sampling, which is where their particles (15-350 px
across) have sizes the network also sees in the synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from skimage import io as skio
from skimage.color import rgb2gray, rgba2rgb

if TYPE_CHECKING:
    from antema_scale.synth import SyntheticMicrograph

__all__ = [
    "EMPS_NOMINAL_PIXEL_SIZE_NM",
    "IMAGE_SUFFIXES",
    "LabelledImage",
    "SYNTH_MODES",
    "SYNTH_OVERLAPS",
    "cycled_mode",
    "dense_raft_images",
    "dense_raft_micrograph",
    "load_folder_pairs",
    "sample_synth_config",
    "sparse_images",
    "sparse_micrograph",
    "split_ids",
    "standin_micrograph",
    "synthetic_images",
    "to_grey",
]

#: Nominal pixel size (nm/px) given to uncalibrated real images such as EMPS.
EMPS_NOMINAL_PIXEL_SIZE_NM = 0.25
#: Image file suffixes read from folders.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


@dataclass
class LabelledImage:
    """One image with its particle mask.

    Attributes
    ----------
    image : numpy.ndarray
        2-D float32 grey image (raw intensities).
    mask : numpy.ndarray
        2-D bool particle mask, same shape.
    pixel_size_nm : float
        nm/px (nominal for uncalibrated images).
    image_id : str
        Identifier (file stem or ``synth-<mode>-<seed>``).
    source : str
        Data set name (``emps``, ``folder``, ``synth``, ``standin``).
    """

    image: np.ndarray
    mask: np.ndarray
    pixel_size_nm: float
    image_id: str
    source: str


def to_grey(image: np.ndarray) -> np.ndarray:
    """Grey float32 version of a 2-D, RGB or RGBA image (intensity scale kept for 2-D)."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = rgba2rgb(image)
    if image.ndim == 3 and image.shape[-1] == 3:
        return rgb2gray(image).astype(np.float32)
    raise ValueError(f"expected a 2-D grey, RGB or RGBA image, got shape {image.shape}")


def split_ids(
    ids: Sequence[str], seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> dict[str, list[str]]:
    """Seeded train/val/test split of ``ids`` (order of the input does not matter).

    Returns
    -------
    dict
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    if not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    ordered = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_train = round(fractions[0] * len(ordered))
    n_val = round(fractions[1] * len(ordered))
    picked = [ordered[i] for i in order]
    return {
        "train": sorted(picked[:n_train]),
        "val": sorted(picked[n_train : n_train + n_val]),
        "test": sorted(picked[n_train + n_val :]),
    }


def _mask_file(masks_dir: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = masks_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def folder_ids(images_dir: str | Path) -> list[str]:
    """Stems of the image files in ``images_dir``, sorted."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"image folder {str(images_dir)!r} does not exist")
    return sorted(p.stem for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder_pairs(
    images_dir: str | Path,
    masks_dir: str | Path,
    pixel_size_nm: float = EMPS_NOMINAL_PIXEL_SIZE_NM,
    *,
    ids: Sequence[str] | None = None,
    source: str = "folder",
) -> Iterator[LabelledImage]:
    """Read image/mask pairs matched by file stem (mask = label > 0).

    Parameters
    ----------
    images_dir, masks_dir : str or Path
        Folders of images and of masks or instance label maps (0 = background).
    pixel_size_nm : float
        Pixel size of all images in nm/px (nominal when they are uncalibrated).
    ids : sequence of str, optional
        Stems to read (default: all images in ``images_dir``).
    source : str
        Data set name recorded in each :class:`LabelledImage`.

    Raises
    ------
    FileNotFoundError
        A folder or an image's mask is missing.
    ValueError
        An image and its mask differ in shape.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    if not masks_dir.is_dir():
        raise FileNotFoundError(f"mask folder {str(masks_dir)!r} does not exist")
    wanted = folder_ids(images_dir) if ids is None else list(ids)
    by_stem = {p.stem: p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    for stem in wanted:
        if stem not in by_stem:
            raise FileNotFoundError(f"no image {stem!r} in {str(images_dir)!r}")
        mask_path = _mask_file(masks_dir, stem)
        if mask_path is None:
            raise FileNotFoundError(f"no mask for image {stem!r} in {str(masks_dir)!r}")
        image = to_grey(skio.imread(by_stem[stem]))
        labels = np.asarray(skio.imread(mask_path))
        if labels.ndim == 3:
            labels = labels[..., 0]
        if labels.shape != image.shape:
            raise ValueError(f"image {stem!r} has shape {image.shape} but its mask {labels.shape}")
        yield LabelledImage(image, labels > 0, float(pixel_size_nm), stem, source)


def standin_micrograph(
    seed: int,
    shape: tuple[int, int] = (256, 256),
    *,
    mode: str = "hrtem",
    pixel_size_nm: float = 0.5,
    diameter_nm: tuple[float, float] = (4.0, 20.0),
    n_particles: int | None = None,
    noise: float = 0.08,
) -> LabelledImage:
    """A simple synthetic micrograph of elliptical particles (for tests and as a fallback).

    Particles are ellipses with diameters drawn uniformly from ``diameter_nm`` (nm),
    dark on a light background (``mode="hrtem"``) or bright on dark (``"haadf"``), with a
    smooth background gradient and Gaussian noise of std ``noise`` (contrast is 0.5).
    """
    if mode not in ("hrtem", "haadf"):
        raise ValueError(f"mode must be 'hrtem' or 'haadf', got {mode!r}")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    mask = np.zeros(shape, dtype=bool)
    thickness = np.zeros(shape, dtype=np.float32)
    area_nm2 = shape[0] * shape[1] * pixel_size_nm**2
    mean_d = float(np.mean(diameter_nm))
    count = n_particles if n_particles is not None else max(1, int(0.25 * area_nm2 / mean_d**2))
    for _ in range(count):
        d_px = rng.uniform(*diameter_nm) / pixel_size_nm
        aspect = rng.uniform(1.0, 1.5)
        a, b = d_px / 2 * math.sqrt(aspect), d_px / 2 / math.sqrt(aspect)
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        angle = rng.uniform(0, math.pi)
        dy, dx = rows - cy, cols - cx
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        q = (u / a) ** 2 + (v / b) ** 2
        inside = q <= 1.0
        mask |= inside
        thickness = np.maximum(thickness, np.where(inside, np.sqrt(np.clip(1 - q, 0, 1)), 0))
    signal = 0.5 * (0.6 + 0.4 * thickness) * mask
    gradient = 0.1 * (rows / shape[0] - 0.5) + 0.1 * (cols / shape[1] - 0.5) * rng.uniform(-1, 1)
    image = (0.3 + signal) if mode == "haadf" else (0.8 - signal)
    image = image + gradient + rng.normal(0.0, noise, shape)
    return LabelledImage(
        image.astype(np.float32), mask, float(pixel_size_nm), f"standin-{mode}-{seed}", "standin"
    )


def sample_synth_config(
    seed: int,
    *,
    mode: str,
    overlap: str,
    shape: tuple[int, int] = (512, 512),
    pixel_size_range_nm: tuple[float, float] = (0.125, 0.5),
    annotations: float = 0.0,
) -> object:
    """A random :class:`antema_scale.synth.SynthConfig` for training/evaluation.

    Particle sizes are drawn so that, on the model's working grid, mean diameters span
    6 to 120 px (log-uniform); the pixel size is log-uniform over 0.06 to 1.0 nm/px (so
    about a third of the images lie outside the working range and are resampled). Shape
    mix, coverage, arrangement, dose, contrast, blur, texture and gradient vary too.
    With probability ``annotations`` the image gets a burned-in scale bar, its label and
    sometimes a panel letter (never particles); this draw has its own random stream, so
    the rest of the configuration of a seed does not depend on it.
    """
    from antema_scale.synth.config import SynthConfig

    rng = np.random.default_rng([seed, 7])
    lo, hi = pixel_size_range_nm
    pixel = float(np.exp(rng.uniform(np.log(0.06), np.log(1.0))))
    working_pixel = min(max(pixel, lo), hi)
    diameter_px = float(np.exp(rng.uniform(np.log(6.0), np.log(120.0))))
    shapes = ["sphere", "ellipsoid", "cube", "octahedron", "prism", "rod", "irregular"]
    weights = rng.dirichlet(np.full(len(shapes), 0.4))
    mix = {name: float(w) for name, w in zip(shapes, weights, strict=True) if w > 0.02}
    mix["sphere"] = mix.get("sphere", 0.0) + 0.5
    return SynthConfig(
        mode=mode,
        image_size=shape,
        pixel_size_nm=pixel,
        shapes=mix,
        diameter_mean_nm=diameter_px * working_pixel,
        diameter_spread=float(rng.uniform(0.05, 0.3)),
        area_fraction=float(rng.uniform(0.05, 0.4)),
        overlap=overlap,
        arrangement=str(rng.choice(["random", "random", "clustered", "rafts"])),
        dose=float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0)))),
        contrast=float(rng.uniform(0.6, 1.5)),
        blur_px=float(rng.uniform(0.3, 1.5)),
        gradient=float(rng.uniform(0.0, 0.3)),
        specks=float(rng.uniform(0.0, 8.0)),
        carbon_texture=float(rng.uniform(0.3, 1.2)),
        defocus=float(rng.uniform(0.0, 2.0)),
        scan_noise=float(rng.uniform(0.0, 0.03)),
        annotations=bool(np.random.default_rng([seed, 11]).random() < annotations),
    )


def _labelled(micrograph: SyntheticMicrograph, image_id: str, source: str) -> LabelledImage:
    """A generated :class:`antema_scale.synth.SyntheticMicrograph` as a labelled image."""
    return LabelledImage(
        np.asarray(micrograph.image, dtype=np.float32),
        np.asarray(micrograph.mask, dtype=bool),
        float(micrograph.pixel_size_nm),
        image_id,
        source,
    )


#: Imaging modes and overlap levels that :func:`synthetic_images` cycles through.
SYNTH_MODES = ("hrtem", "haadf")
SYNTH_OVERLAPS = ("low", "medium")


def cycled_mode(
    index: int, modes: Sequence[str] = SYNTH_MODES, overlaps: Sequence[str] = SYNTH_OVERLAPS
) -> tuple[str, str]:
    """Mode and overlap level of the ``index``-th image of a synthetic set (mode varies fastest)."""
    return modes[index % len(modes)], overlaps[(index // len(modes)) % len(overlaps)]


def synthetic_images(
    seeds: Sequence[int],
    *,
    modes: Sequence[str] = SYNTH_MODES,
    overlaps: Sequence[str] = SYNTH_OVERLAPS,
    shape: tuple[int, int] = (512, 512),
    pixel_size_range_nm: tuple[float, float] = (0.125, 0.5),
    annotations: float = 0.0,
) -> Iterator[LabelledImage]:
    """Synthetic micrographs from :mod:`antema_scale.synth` with exact masks.

    Each seed gives one image; its mode and overlap level cycle through ``modes`` and
    ``overlaps``, the rest of the configuration comes from :func:`sample_synth_config`.
    """
    from antema_scale.synth import generate_micrograph

    for i, seed in enumerate(seeds):
        mode, overlap = cycled_mode(i, modes, overlaps)
        config = sample_synth_config(
            seed,
            mode=mode,
            overlap=overlap,
            shape=shape,
            pixel_size_range_nm=pixel_size_range_nm,
            annotations=annotations,
        )
        yield _labelled(
            generate_micrograph(config, seed), f"synth-{mode}-{overlap}-{seed}", "synth"
        )


def dense_raft_images(
    seeds: Sequence[int], *, shape: tuple[int, int] = (512, 512), source: str = "rafts"
) -> Iterator[LabelledImage]:
    """Dense rafts of touching particles (HAADF films), for checkpoint selection or training.

    Pixel metrics hardly move when a network widens every outline of a close-packed film
    by a pixel, but the particle analysis then merges neighbours: scoring these scenes
    (instance F1) during training keeps such checkpoints from being selected. The scenes
    come from the ``haadf-film`` family of :mod:`antema_scale.synth.presets` (5-14 nm
    particles, 30-55 % coverage, 0.15-0.6 nm/px), each seed drawn on its own stream.
    ``source`` names their source: ``"rafts"`` for validation; training scenes join the
    ``"synth"`` pool.
    """
    for seed in seeds:
        yield _labelled(dense_raft_micrograph(seed, shape), f"raft-{seed}", source)


def sparse_images(
    seeds: Sequence[int], *, shape: tuple[int, int] = (512, 512), source: str = "synth"
) -> Iterator[LabelledImage]:
    """Sparse scenes on uneven backgrounds (:func:`sparse_micrograph`) as labelled images."""
    for seed in seeds:
        yield _labelled(sparse_micrograph(seed, shape), f"sparse-{seed}", source)


def sparse_micrograph(seed: int, shape: tuple[int, int] = (512, 512)) -> SyntheticMicrograph:
    """A sparse scene on an uneven background, for training (drawn on its own stream).

    The training sampler's configuration of ``seed`` (:func:`sample_synth_config`, bright
    field for even seeds, HAADF for odd ones, low overlap) with 0.3-3 % of the area covered
    (log-uniform), a background gradient of 0.1-0.4 and particles spread at random or in
    clusters: fields of mostly empty, uneven support, which the 5-40 % coverage of the
    sampler never draws and on which a network may take a bright or dark stretch of support
    for the inside of a particle (``benchmarks/sparse_particles.py``).
    """
    import dataclasses

    from antema_scale.synth import generate_micrograph

    rng = np.random.default_rng([seed, 17])
    config = sample_synth_config(seed, mode=SYNTH_MODES[seed % 2], overlap="low", shape=shape)
    config = dataclasses.replace(
        config,
        area_fraction=float(np.exp(rng.uniform(np.log(0.003), np.log(0.03)))),
        gradient=float(rng.uniform(0.1, 0.4)),
        arrangement=str(rng.choice(["random", "clustered"])),
    )
    return generate_micrograph(config, seed)


def dense_raft_micrograph(seed: int, shape: tuple[int, int] = (512, 512)) -> SyntheticMicrograph:
    """The dense-raft scene of one seed (``haadf-film`` family, drawn on its own stream).

    The scene :func:`dense_raft_images` labels, with its exact per-particle truth.
    """
    from antema_scale.synth import generate_micrograph
    from antema_scale.synth.presets import preset_config

    config = preset_config("haadf-film", np.random.default_rng([seed, 13]), shape)
    return generate_micrograph(config, seed)
