"""Contact sheet of synthetic micrographs: every mode, overlap level, preset family, scene.

Usage::

    python examples/make_contact_sheet.py [-o examples/synth_contact_sheet.png] [--compare]

Rows 1-2: bright-field TEM and HAADF-STEM at overlap none / low / medium / high, each with
its exact truth outlines (green: single particle, red: overlaps another) beside it.
Row 3: one image per realistic preset family of :func:`antema_scale.synth.random_config`.
Row 4: controlled scenes (pair at 25 % overlap, chain, cluster) and movie frames.
With ``--compare`` (not for the committed PNG: the real images are not ours to ship),
a last row shows real micrographs from ``../shared/data`` for a side-by-side look.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402

from antema_scale.synth import (  # noqa: E402
    PRESETS,
    SynthConfig,
    SyntheticMicrograph,
    generate_micrograph,
    generate_movie,
    generate_scene,
    preset_config,
)

OVERLAPS = ("none", "low", "medium", "high")
MODE_CONFIGS = {
    "hrtem": SynthConfig(
        mode="hrtem",
        image_size=384,
        pixel_size_nm=0.25,
        diameter_mean_nm=9.0,
        diameter_spread=0.2,
        area_fraction=0.22,
        arrangement="clustered",
        dose=400.0,
        defocus=0.8,
    ),
    "haadf": SynthConfig(
        mode="haadf",
        image_size=384,
        pixel_size_nm=0.33,
        diameter_mean_nm=10.0,
        diameter_spread=0.1,
        area_fraction=0.35,
        arrangement="rafts",
        profile_exponent=0.25,
        dose=80.0,
        gradient=0.2,
    ),
}


def display(image: np.ndarray) -> np.ndarray:
    """Percentile-stretched copy of an image in [0, 1] for display."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / max(hi - lo, 1e-9), 0.0, 1.0)


def outlines(mic: SyntheticMicrograph) -> np.ndarray:
    """RGB picture of the truth: particle outlines, red where the particle overlaps another."""
    rgb = np.zeros((*mic.mask.shape, 3), np.float32)
    rgb[mic.mask] = 0.18
    overlapping = dict(zip(mic.truth["particle_id"], mic.truth["overlaps"], strict=True))
    ids = mic.particle_ids or list(range(1, len(mic.particles) + 1))
    for pid, crop in zip(ids, mic.particles, strict=True):
        edge = find_boundaries(np.pad(crop.mask, 1), mode="inner")[1:-1, 1:-1]
        r0, c0 = crop.offset
        h, w = crop.mask.shape
        colour = (1.0, 0.25, 0.2) if overlapping[pid] else (0.3, 1.0, 0.4)
        rgb[r0 : r0 + h, c0 : c0 + w][edge] = colour
    return rgb


def show(ax: plt.Axes, picture: np.ndarray, title: str) -> None:
    ax.imshow(picture, cmap="gray", interpolation="lanczos" if picture.ndim == 2 else "nearest")
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def real_examples(shared: Path) -> list[tuple[str, np.ndarray]]:
    """A few real micrographs from ../shared/data (for --compare only)."""
    import h5py
    from skimage.io import imread

    found: list[tuple[str, np.ndarray]] = []
    for path in sorted((shared / "haadf-films").glob("*.h5"))[:2]:
        with h5py.File(path) as h5:
            found.append((f"real HAADF {path.stem}", np.asarray(h5["data"][:384, :384], float)))
    for path in sorted((shared / "emps-train" / "images").glob("*.png"))[:6]:
        image = imread(path)
        found.append(
            (f"real EMPS {path.stem}", image[..., :3].mean(-1) if image.ndim == 3 else image)
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path(__file__).with_name("synth_contact_sheet.png")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare", action="store_true", help="add real images from ../shared/data"
    )
    args = parser.parse_args()

    n_rows = 5 if args.compare else 4
    fig, axes = plt.subplots(n_rows, 8, figsize=(16, 2.1 * n_rows), dpi=110)
    for row, (mode, config) in enumerate(MODE_CONFIGS.items()):
        for k, level in enumerate(OVERLAPS):
            mic = generate_micrograph(config.with_(overlap=level), args.seed + k)
            share = mic.truth["overlaps"].mean() if len(mic.truth) else 0.0
            show(
                axes[row, 2 * k],
                display(mic.image),
                f"{mode}, overlap {level}, {mic.pixel_size_nm:.2f} nm/px",
            )
            show(
                axes[row, 2 * k + 1],
                outlines(mic),
                f"truth: {len(mic.truth)} particles, {share:.0%} overlapping",
            )
    rng = np.random.default_rng(args.seed)
    for k, name in enumerate(sorted(PRESETS)):
        config = preset_config(name, rng, 384)
        mic = generate_micrograph(config, args.seed + 10 + k)
        show(
            axes[2, k],
            display(mic.image),
            f"{name}\n{config.pixel_size_nm:.3f} nm/px, d = {config.diameter_mean_nm:.1f} nm",
        )
    base = SynthConfig(
        mode="haadf", image_size=192, pixel_size_nm=0.08, dose=150.0, profile_exponent=0.3
    )
    pair = generate_scene(base, "pair", args.seed, diameter_nm=5.0, overlap=0.25, angle_rad=0.3)
    show(axes[2, 6], display(pair.image), "pair, 5 nm discs, 25 % overlap")
    show(axes[2, 7], outlines(pair), "truth of the pair")
    chain = generate_scene(
        base.with_(mode="hrtem", pixel_size_nm=0.12, image_size=192),
        "chain",
        args.seed,
        n=5,
        diameter_nm=4.0,
        overlap=0.15,
    )
    show(axes[3, 0], display(chain.image), "chain of 5, 15 % overlap (hrtem)")
    show(axes[3, 1], outlines(chain), "truth of the chain")
    cluster = generate_scene(
        base.with_(pixel_size_nm=0.15), "cluster", args.seed, n=7, diameter_nm=4.0, overlap=0.2
    )
    show(axes[3, 2], display(cluster.image), "cluster of 7, 20 % overlap")
    show(axes[3, 3], outlines(cluster), "truth of the cluster")
    movie_config = SynthConfig(
        mode="haadf",
        image_size=192,
        pixel_size_nm=0.3,
        diameter_mean_nm=5.0,
        diameter_spread=0.35,
        area_fraction=0.25,
        overlap="low",
        dose=100.0,
    )
    movie = generate_movie(
        movie_config,
        16,
        args.seed,
        ostwald_rate=0.08,
        appearance_rate=0.5,
        approach_nm_per_frame=0.2,
    )
    for k, frame in enumerate((0, 5, 10, 15)):
        mic = movie.micrographs[frame]
        show(axes[3, 4 + k], display(mic.image), f"movie frame {frame}: {len(mic.truth)} particles")
    if args.compare:
        shared = Path(__file__).resolve().parents[1].parent / "shared" / "data"
        for k, (title, image) in enumerate(real_examples(shared)[:8]):
            show(axes[4, k], display(image), title)
        for ax in axes[4, len(real_examples(shared)) :]:
            ax.set_axis_off()
    fig.suptitle(
        "antema-scale synthetic micrographs with exact truth (antema_scale.synth)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
