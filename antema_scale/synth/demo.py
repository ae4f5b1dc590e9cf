"""A small built-in sample for ``antema-scale demo``, generated at run time in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from antema_scale.synth.config import SynthConfig
from antema_scale.synth.micrograph import SyntheticMicrograph, generate_micrograph
from antema_scale.synth.writers import write_micrograph

#: The demo scenes: name -> configuration (mixed modes, 512-1024 px, nm pixel sizes).
DEMO_CONFIGS: dict[str, SynthConfig] = {
    "haadf_film": SynthConfig(
        mode="haadf",
        image_size=768,
        pixel_size_nm=0.33,
        diameter_mean_nm=10.0,
        diameter_spread=0.08,
        area_fraction=0.4,
        overlap="low",
        arrangement="rafts",
        profile_exponent=0.25,
        dose=80.0,
        gradient=0.2,
        specks=3.0,
        blur_px=1.3,
    ),
    "hrtem_gold_2nm": SynthConfig(
        mode="hrtem",
        image_size=512,
        pixel_size_nm=0.08,
        diameter_mean_nm=2.0,
        diameter_spread=0.25,
        shapes={"sphere": 1.0, "irregular": 0.5},
        area_fraction=0.08,
        overlap="low",
        dose=150.0,
        contrast=0.9,
        defocus=1.0,
    ),
    "tem_spheres_overlap": SynthConfig(
        mode="hrtem",
        image_size=1024,
        pixel_size_nm=0.25,
        diameter_mean_nm=12.0,
        diameter_spread=0.15,
        area_fraction=0.2,
        overlap="medium",
        arrangement="clustered",
        dose=600.0,
        contrast=1.0,
        defocus=0.8,
        thickness_ratio=0.8,
    ),
    "haadf_mixed_shapes": SynthConfig(
        mode="haadf",
        image_size=512,
        pixel_size_nm=0.2,
        diameter_mean_nm=8.0,
        diameter_spread=0.2,
        shapes={"sphere": 1.0, "cube": 0.6, "rod": 0.4, "octahedron": 0.4},
        area_fraction=0.15,
        overlap="low",
        dose=60.0,
        profile_exponent=0.35,
    ),
}


def demo_images(n: int = 4, seed: int = 0) -> list[tuple[str, SyntheticMicrograph]]:
    """The first ``n`` demo scenes (cycling when ``n`` > 4) as ``(name, micrograph)``.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int
        Base seed; image ``i`` uses ``seed + i``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    names = list(DEMO_CONFIGS)
    out = []
    for i in range(n):
        name = names[i % len(names)]
        suffix = "" if i < len(names) else f"_{i // len(names)}"
        out.append((f"{name}{suffix}", generate_micrograph(DEMO_CONFIGS[name], seed + i)))
    return out


def write_demo_sample(directory: str | Path, n: int = 4, seed: int = 0) -> list[Path]:
    """Write the demo images as calibrated HDF5 files (plus truth) into ``directory``.

    Images go to ``<directory>/<name>.h5`` (``data`` + ``scale``/``scale_unit``); the
    truth (union masks and particle crops as ``.npz``, tables as ``.csv``) to
    ``<directory>/truth/`` -- no file there is a micrograph format, so analysing
    ``directory`` recursively sees the images only.

    Returns
    -------
    list of pathlib.Path
        The image files, ready for ``read_micrograph`` / ``antema-scale analyze``.
    """
    out = Path(directory)
    images, truths = [], []
    for name, mic in demo_images(n, seed):
        written = write_micrograph(mic, out, name, formats=("h5",), separate_folders=False)
        images.append(written["h5"])
        truth = mic.truth.copy()
        truth.insert(0, "image_id", name)
        truths.append(truth)
    if truths:
        pd.concat(truths, ignore_index=True).to_csv(out / "truth" / "truth.csv", index=False)
    return images


def demo_pixel_sizes() -> dict[str, float]:
    """Pixel size (nm/px) of every demo scene."""
    return {name: float(np.float64(cfg.pixel_size_nm)) for name, cfg in DEMO_CONFIGS.items()}
