"""Named families of realistic configurations and a sampler of varied ones.

Each family is a kind of micrograph met in practice (see the real examples in
``../shared/data``): ultrasmall gold at poor contrast, lattice-resolved HRTEM, low
magnification TEM of colloids, HAADF films of close-packed particles, atomic-resolution
HAADF, HAADF overviews. :func:`random_config` draws a family and then every knob inside
the family's ranges, so a training set built from it spans modes, pixel sizes
(0.01-2 nm/px), sizes, shapes, overlap levels and signal-to-noise ratios.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from antema_scale.synth.config import SynthConfig

Sampler = Callable[[np.random.Generator, tuple[int, int]], SynthConfig]


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _shape_mix(rng: np.random.Generator, favourites: dict[str, float]) -> dict[str, float]:
    """Favourite shapes plus, sometimes, a random minority of others."""
    mix = dict(favourites)
    if rng.random() < 0.4:
        extra = str(rng.choice(["ellipsoid", "cube", "octahedron", "prism", "rod", "irregular"]))
        mix[extra] = mix.get(extra, 0.0) + float(rng.uniform(0.1, 0.6))
    return mix


def _overlap(rng: np.random.Generator) -> str:
    return str(rng.choice(["none", "low", "low", "medium", "high"]))


def _common(rng: np.random.Generator) -> dict[str, float | bool]:
    return {
        "blur_px": float(rng.uniform(0.3, 1.4)),
        "gradient": float(rng.uniform(0.0, 0.35)),
        "specks": float(rng.uniform(0.0, 10.0)),
        # one image in five shows the edge of a hole in the support film
        "holes": float(rng.uniform(0.05, 0.4)) if rng.random() < 0.2 else 0.0,
        # one in four carries a burned-in scale bar, as exported figures do
        "annotations": bool(rng.random() < 0.25),
    }


def ultrasmall_hrtem(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """Ultrasmall (1-2.5 nm) gold in bright field at poor SNR, as in the paper's Fig. 4/7."""
    return SynthConfig(
        mode="hrtem",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.04, 0.15),
        shapes=_shape_mix(rng, {"sphere": 1.0, "irregular": 0.5}),
        diameter_mean_nm=float(rng.uniform(1.0, 2.5)),
        diameter_spread=float(rng.uniform(0.15, 0.35)),
        area_fraction=float(rng.uniform(0.03, 0.2)),
        overlap=_overlap(rng),
        arrangement=str(rng.choice(["random", "clustered"])),
        dose=_log_uniform(rng, 30.0, 500.0),
        contrast=float(rng.uniform(0.5, 1.2)),
        carbon_texture=float(rng.uniform(0.8, 1.8)),
        defocus=float(rng.uniform(0.3, 2.5)),
        **_common(rng),
    )


def lattice_hrtem(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """High-resolution TEM (0.01-0.08 nm/px): resolved lattice fringes, 2-15 nm particles."""
    return SynthConfig(
        mode="hrtem",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.01, 0.08),
        shapes=_shape_mix(rng, {"sphere": 1.0, "octahedron": 0.4, "irregular": 0.4}),
        diameter_mean_nm=_log_uniform(rng, 2.0, 15.0),
        diameter_spread=float(rng.uniform(0.1, 0.3)),
        area_fraction=float(rng.uniform(0.05, 0.3)),
        overlap=_overlap(rng),
        dose=_log_uniform(rng, 100.0, 2000.0),
        contrast=float(rng.uniform(0.4, 1.3)),
        carbon_texture=float(rng.uniform(0.5, 1.5)),
        defocus=float(rng.uniform(0.2, 2.0)),
        **_common(rng),
    )


def colloid_tem(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """Conventional TEM of colloids (0.1-2 nm/px), 5-150 nm particles of many shapes."""
    favourite = str(rng.choice(["sphere", "cube", "rod", "octahedron", "prism", "ellipsoid"]))
    return SynthConfig(
        mode="hrtem",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.1, 2.0),
        shapes=_shape_mix(rng, {favourite: 1.0}),
        diameter_mean_nm=1.0,  # replaced below so that particles span 6-120 px
        diameter_spread=float(rng.uniform(0.05, 0.3)),
        area_fraction=float(rng.uniform(0.05, 0.45)),
        overlap=_overlap(rng),
        arrangement=str(rng.choice(["random", "clustered", "rafts"])),
        dose=_log_uniform(rng, 50.0, 5000.0),
        contrast=float(rng.uniform(0.5, 1.5)),
        carbon_texture=float(rng.uniform(0.2, 1.0)),
        defocus=float(rng.uniform(0.0, 1.5)),
        thickness_ratio=float(rng.uniform(0.3, 1.0)),
        **_common(rng),
    )


def haadf_film(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """HAADF-STEM of close-packed films of ~10 nm particles (like ../shared/data/haadf-films)."""
    return SynthConfig(
        mode="haadf",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.15, 0.6),
        shapes=_shape_mix(rng, {"sphere": 1.0}),
        diameter_mean_nm=float(rng.uniform(5.0, 14.0)),
        diameter_spread=float(rng.uniform(0.04, 0.15)),
        area_fraction=float(rng.uniform(0.3, 0.55)),
        overlap=str(rng.choice(["none", "low", "medium"])),
        arrangement="rafts",
        profile_exponent=float(rng.uniform(0.15, 0.4)),
        dose=_log_uniform(rng, 20.0, 400.0),
        contrast=float(rng.uniform(0.6, 1.5)),
        carbon_texture=float(rng.uniform(0.5, 1.5)),
        scan_noise=float(rng.uniform(0.0, 0.03)),
        detector_offset=float(rng.choice([0.0, rng.uniform(100.0, 5000.0)])),
        **(_common(rng) | {"blur_px": float(rng.uniform(0.8, 1.8))}),
    )


def atomic_haadf(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """Atomic-resolution HAADF (0.01-0.06 nm/px): visible columns, 1.5-8 nm particles."""
    return SynthConfig(
        mode="haadf",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.01, 0.06),
        shapes=_shape_mix(rng, {"sphere": 1.0, "octahedron": 0.5}),
        diameter_mean_nm=_log_uniform(rng, 1.5, 8.0),
        diameter_spread=float(rng.uniform(0.1, 0.3)),
        area_fraction=float(rng.uniform(0.05, 0.3)),
        overlap=_overlap(rng),
        dose=_log_uniform(rng, 5.0, 200.0),
        contrast=float(rng.uniform(0.4, 1.4)),
        carbon_texture=float(rng.uniform(0.5, 1.5)),
        scan_noise=float(rng.uniform(0.0, 0.05)),
        **_common(rng),
    )


def haadf_overview(rng: np.random.Generator, shape: tuple[int, int]) -> SynthConfig:
    """HAADF overview (0.1-2 nm/px), dispersed or clustered particles, ultrasmall to large."""
    return SynthConfig(
        mode="haadf",
        image_size=shape,
        pixel_size_nm=_log_uniform(rng, 0.1, 2.0),
        shapes=_shape_mix(rng, {"sphere": 1.0, "irregular": 0.3}),
        diameter_mean_nm=1.0,  # replaced below so that particles span 4-100 px
        diameter_spread=float(rng.uniform(0.1, 0.35)),
        area_fraction=float(rng.uniform(0.03, 0.35)),
        overlap=_overlap(rng),
        arrangement=str(rng.choice(["random", "clustered"])),
        profile_exponent=float(rng.uniform(0.2, 0.5)),
        dose=_log_uniform(rng, 5.0, 500.0),
        contrast=float(rng.uniform(0.3, 1.5)),
        carbon_texture=float(rng.uniform(0.3, 1.5)),
        scan_noise=float(rng.uniform(0.0, 0.03)),
        **_common(rng),
    )


#: Families of realistic micrographs, name -> sampler(rng, shape).
PRESETS: dict[str, Sampler] = {
    "ultrasmall-hrtem": ultrasmall_hrtem,
    "lattice-hrtem": lattice_hrtem,
    "colloid-tem": colloid_tem,
    "haadf-film": haadf_film,
    "atomic-haadf": atomic_haadf,
    "haadf-overview": haadf_overview,
}

#: Diameter ranges in px for the families whose diameter is set relative to the pixel.
_DIAMETER_PX = {"colloid-tem": (6.0, 120.0), "haadf-overview": (4.0, 100.0)}


def preset_config(
    name: str, rng: np.random.Generator, image_size: int | tuple[int, int] = 512
) -> SynthConfig:
    """A random configuration from one named family (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    shape = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    config = PRESETS[name](rng, shape)  # type: ignore[arg-type]
    if name in _DIAMETER_PX:
        diameter_px = _log_uniform(rng, *_DIAMETER_PX[name])
        config = config.with_(diameter_mean_nm=diameter_px * config.pixel_size_nm)
    # Keep particles between 3 px and a quarter of the field across.
    lo_nm = 3.0 * config.pixel_size_nm
    hi_nm = min(shape) / 4.0 * config.pixel_size_nm
    return config.with_(diameter_mean_nm=float(np.clip(config.diameter_mean_nm, lo_nm, hi_nm)))


def random_config(
    rng: np.random.Generator,
    *,
    mode: str | None = None,
    image_size: int | tuple[int, int] = 512,
    overlap: str | None = None,
) -> SynthConfig:
    """A varied, realistic configuration: a random family, then random knobs within it.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (deterministic for a seeded generator).
    mode : {"hrtem", "haadf"} or None
        Restrict to one imaging mode; None draws both.
    image_size : int or (int, int)
        Image size, px.
    overlap : str or None
        Force an overlap level ("none", "low", "medium", "high"); None draws one.

    Returns
    -------
    SynthConfig
    """
    names = sorted(PRESETS)
    if mode is not None:
        if mode not in ("hrtem", "haadf"):
            raise ValueError(f"mode must be 'hrtem', 'haadf' or None, got {mode!r}")
        names = [n for n in names if ("haadf" in n) == (mode == "haadf")]
    config = preset_config(str(rng.choice(names)), rng, image_size)
    if overlap is not None:
        config = config.with_(overlap=overlap)
    return config
