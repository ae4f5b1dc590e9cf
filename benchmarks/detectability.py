"""Which synthetic particles a segmenter finds, by how visible they are (Rose number).

The synthetic sampler draws dose, contrast, particle size and pixel size independently,
so some test images hold particles that are barely above the noise. This script asks,
per true particle of a synthetic split, how visible the particle is in the image and
whether the segmenter found it, so that "the model misses particles a human would see"
and "the model misses particles nobody could see" can be told apart.

Visibility is the Rose number of the particle on its native pixel grid,

    k = |mean(particle) - mean(background ring)| / std(background ring) * sqrt(n_px),

with the particle's own pixels (overlaps with other particles left out) and a ring of
background around it (up to ``max(4 px, one radius)`` away, at least 2 px from any
particle). Rose's criterion puts the detection limit of a uniform object in white noise
at ``k ~ 5``. The ring's standard deviation holds shot noise and support texture alike,
and the noise of blurred images is correlated, so ``k`` is a relative scale across
images rather than an absolute limit.

A particle counts as *found* when at least half of its own pixels are predicted
particle. Per image the script also reports the pixel IoU, and the pixel IoU of the
images grouped by the share of their particles with ``k >= 5``.

It also reports the **ceiling** of particle IoU that a visibility limit implies: the IoU
of an observer that outlines every particle with ``k >= limit`` exactly and misses every
other one (its mask is the union of those particles' true masks, so IoU = its pixels /
true pixels), for the limits in ``CEILING_LIMITS``. ``--ceiling-only`` skips the network
and reports just that.

Finally it splits the segmenter's pixel errors into an **error budget**: missed pixels of
particles below the Rose limit, of visible particles it did not find, and of particles it
found (outlines drawn too tight); false pixels within 2 px of a true particle (outlines
drawn too wide) and farther away (false detections). For each, the particle IoU the
segmenter would reach if that error alone were removed.

Run (default inference of the shipped model, synthetic test split as ``antema-scale
evaluate --synthetic 400 --split test`` draws it)::

    python benchmarks/detectability.py [--model PATH] [--split test] [--synthetic 400]
        [--json benchmarks/results/detectability_test.json] [--csv particles.csv]
        [--ceiling-only]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage as ndi

from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import cycled_mode, sample_synth_config
from antema_scale.segment.train import SYNTH_SEED_BASE, TrainConfig, split_size
from antema_scale.synth import generate_micrograph

#: Edges of the Rose-number bins of the report.
ROSE_BINS = (0.0, 2.0, 5.0, 10.0, 20.0, np.inf)
#: Rose's detection limit.
ROSE_LIMIT = 5.0
#: Visibility limits of the IoU ceilings (an observer that finds exactly the particles above).
CEILING_LIMITS = (2.0, 5.0, 10.0)


def particle_visibility(
    image: np.ndarray, own: np.ndarray, others: np.ndarray, radius_px: float
) -> tuple[float, int]:
    """Rose number and pixel count of one particle.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (any units: ``k`` is a ratio).
    own : numpy.ndarray
        bool, the particle's own pixels (not shared with other particles).
    others : numpy.ndarray
        bool, pixels of every particle (the ring keeps 2 px away from them).
    radius_px : float
        Equivalent radius of the particle, px (sets the ring width).

    Returns
    -------
    tuple of (float, int)
        ``(k, n_px)``; ``k`` is NaN when the particle or its ring is empty.
    """
    n_px = int(own.sum())
    ring_width = max(4, int(round(radius_px)))
    ring = ndi.binary_dilation(own, iterations=ring_width) & ~ndi.binary_dilation(
        others, iterations=2
    )
    if n_px == 0 or ring.sum() < 8:
        return float("nan"), n_px
    background = image[ring]
    spread = float(background.std())
    if spread == 0:
        return float("inf"), n_px
    contrast = abs(float(image[own].mean()) - float(background.mean()))
    return contrast / spread * np.sqrt(n_px), n_px


def image_particles(micrograph: object, found: np.ndarray) -> pd.DataFrame:
    """One row per particle of a synthetic micrograph: Rose number, size, found or not."""
    image = micrograph.image.astype(np.float64)
    union = micrograph.mask
    shape = image.shape
    count = np.zeros(shape, dtype=np.int32)
    for crop in micrograph.particles:
        r0, c0 = crop.offset
        h, w = crop.mask.shape
        count[r0 : r0 + h, c0 : c0 + w] += crop.mask
    rows = []
    for index, crop in enumerate(micrograph.particles):
        r0, c0 = crop.offset
        h, w = crop.mask.shape
        pad = max(8, int(np.sqrt(crop.mask.sum() / np.pi)) + 8)
        y0, x0 = max(0, r0 - pad), max(0, c0 - pad)
        y1, x1 = min(shape[0], r0 + h + pad), min(shape[1], c0 + w + pad)
        own = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        own[r0 - y0 : r0 - y0 + h, c0 - x0 : c0 - x0 + w] = crop.mask
        own &= count[y0:y1, x0:x1] == 1
        if not own.any():
            continue
        radius = float(np.sqrt(crop.mask.sum() / np.pi))
        k, n_px = particle_visibility(image[y0:y1, x0:x1], own, union[y0:y1, x0:x1], radius)
        rows.append(
            {
                "particle": index + 1,
                "rose_k": k,
                "own_px": n_px,
                "diameter_px": 2 * radius,
                "recall": float(found[y0:y1, x0:x1][own].mean()),
            }
        )
    table = pd.DataFrame(rows)
    table["found"] = table["recall"] >= 0.5
    return table


def visible_pixels(micrograph: object, particles: pd.DataFrame, limit: float) -> int:
    """Pixels of the union of the true masks of the particles with Rose number >= ``limit``.

    ``particles`` is the table of :func:`image_particles` (particles hidden entirely under
    others have no row and count as not visible; their pixels belong to the ones on top).
    """
    seen = set(particles.loc[particles["rose_k"] >= limit, "particle"])
    return int((particle_union(micrograph, seen) & micrograph.mask).sum())


def particle_union(micrograph: object, numbers: set[int]) -> np.ndarray:
    """Union of the true masks of the particles numbered ``numbers`` (1-based, as in
    :func:`image_particles`), on the image grid."""
    union = np.zeros(micrograph.mask.shape, dtype=bool)
    for index, crop in enumerate(micrograph.particles):
        if index + 1 in numbers:
            r0, c0 = crop.offset
            h, w = crop.mask.shape
            union[r0 : r0 + h, c0 : c0 + w] |= crop.mask
    return union


#: False-positive pixels up to this far (px) from a true particle count as outline errors.
OUTLINE_PX = 2
#: Error classes of :func:`error_budget`, in the order of the report.
ERROR_CLASSES = ("fn_invisible", "fn_missed", "fn_outline", "fp_outline", "fp_detection")


def error_budget(micrograph: object, particles: pd.DataFrame, found: np.ndarray) -> dict[str, int]:
    """Pixel errors of a predicted mask split by cause (see the module docstring).

    A missed pixel covered by several particles is charged to a found particle first, then
    to a visible one, then to an invisible one.
    """
    truth = micrograph.mask
    was_found = particles["found"].astype(bool)
    visible = ~was_found & (particles["rose_k"] >= ROSE_LIMIT)
    missed = truth & ~found
    near = ndi.binary_dilation(truth, iterations=OUTLINE_PX)
    false = found & ~truth
    outline = missed & particle_union(micrograph, set(particles.loc[was_found, "particle"]))
    missed_visible = (
        missed & particle_union(micrograph, set(particles.loc[visible, "particle"])) & ~outline
    )
    return {
        "fn_invisible": int((missed & ~outline & ~missed_visible).sum()),
        "fn_missed": int(missed_visible.sum()),
        "fn_outline": int(outline.sum()),
        "fp_outline": int((false & near).sum()),
        "fp_detection": int((false & ~near).sum()),
    }


def main() -> None:
    """Predict every synthetic image of the split and tabulate found particles by visibility."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--synthetic", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--csv", type=Path, default=None, help="per-particle table")
    parser.add_argument(
        "--ceiling-only", action="store_true", help="no network: only the IoU ceilings"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    config = TrainConfig(
        synthetic_images=args.synthetic,
        pixel_size_range_nm=model.preprocessing.pixel_size_range_nm,
    )
    n_images = split_size(config, args.split)  # synthetic images only: no folders, no rafts
    particles, images = [], []
    for i in range(n_images):
        seed = SYNTH_SEED_BASE[args.split] + i
        mode, overlap = cycled_mode(i)
        synth_config = sample_synth_config(
            seed,
            mode=mode,
            overlap=overlap,
            shape=config.synthetic_shape,
            pixel_size_range_nm=tuple(config.pixel_size_range_nm),
        )
        micrograph = generate_micrograph(synth_config, seed)
        truth = micrograph.mask
        if args.ceiling_only:
            found, refine = np.zeros_like(truth), float("nan")
        else:
            (prediction,) = predict(model, [micrograph.image], [micrograph.pixel_size_nm])
            found, refine = prediction.mask, float(prediction.quality["refine_zoom"])
        table = image_particles(micrograph, found)
        table["image"] = f"synth-{mode}-{overlap}-{seed}"
        table["mode"] = mode
        table["refine_zoom"] = refine
        particles.append(table)
        images.append(
            {
                "image": f"synth-{mode}-{overlap}-{seed}",
                "mode": mode,
                "tp": int((found & truth).sum()),
                "fp": int((found & ~truth).sum()),
                "fn": int((~found & truth).sum()),
                "truth_px": int(truth.sum()),
                **error_budget(micrograph, table, found),
                **{
                    f"visible_px_k{limit:g}": visible_pixels(micrograph, table, limit)
                    for limit in CEILING_LIMITS
                },
                "visible_share": float((table["rose_k"] >= ROSE_LIMIT).mean()),
                "refine_zoom": refine,
            }
        )
        print(f"{i + 1} / {n_images} images", flush=True)
    every_particle = pd.concat(particles, ignore_index=True)
    image_table = pd.DataFrame(images)
    report = {"iou_ceiling": iou_ceilings(image_table)}
    if not args.ceiling_only:
        report.update(summarize(every_particle, image_table))
    if args.csv is not None:
        every_particle.to_csv(args.csv, index=False)
    print(json.dumps(report, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps({"split": args.split, **report}, indent=1) + "\n")


def iou_ceilings(images: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Particle IoU of an observer that finds exactly the particles at ``k >= limit``.

    Per visibility limit, overall and per imaging mode (pixels summed over the images).
    """
    groups = _all_and_by_mode(images)
    return {
        f"k >= {limit:g}": {
            name: round(float(rows[f"visible_px_k{limit:g}"].sum() / rows["truth_px"].sum()), 4)
            for name, rows in groups.items()
        }
        for limit in CEILING_LIMITS
    }


def _all_and_by_mode(images: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``{"all": images, "<mode>": the images of that mode, ...}``."""
    return {"all": images, **dict(tuple(images.groupby("mode")))}


def summarize(particles: pd.DataFrame, images: pd.DataFrame) -> dict[str, object]:
    """Found fraction per Rose-number bin (by mode) and pixel IoU by image visibility."""
    bins = pd.cut(particles["rose_k"], ROSE_BINS, right=False)
    by_bin = {}
    for (mode, interval), rows in particles.groupby([particles["mode"], bins], observed=True):
        by_bin.setdefault(mode, []).append(
            {
                "rose_k": f"{interval.left:g}-{interval.right:g}",
                "particles": len(rows),
                "found": round(float(rows["found"].mean()), 4),
                "median_diameter_px": round(float(rows["diameter_px"].median()), 1),
            }
        )
    groups = {
        "all images": images,
        "images with >= 90 % of particles at k >= 5": images[images.visible_share >= 0.9],
        "images with < 90 % of particles at k >= 5": images[images.visible_share < 0.9],
    }
    by_images = {}
    for name, rows in groups.items():
        union = rows.tp.sum() + rows.fp.sum() + rows.fn.sum()
        by_images[name] = {
            "images": len(rows),
            "iou_particle": round(float(rows.tp.sum() / union), 4) if union else None,
        }
    visible = particles["rose_k"] >= ROSE_LIMIT
    groups = _all_and_by_mode(images)
    budget = {}
    for name, rows in groups.items():
        tp, errors = rows.tp.sum(), rows.fp.sum() + rows.fn.sum()
        budget[name] = {
            kind: {
                "share_of_errors": round(float(rows[kind].sum() / errors), 4),
                # a missed pixel fixed becomes a hit; a false pixel fixed leaves the union
                "iou_without": round(
                    float(
                        (tp + rows[kind].sum()) / (tp + errors)
                        if kind.startswith("fn")
                        else tp / (tp + errors - rows[kind].sum())
                    ),
                    4,
                ),
            }
            for kind in ERROR_CLASSES
        }
    return {
        "particles": len(particles),
        "share_below_rose_limit": round(float((~visible).mean()), 4),
        "found_at_or_above_limit": round(float(particles.loc[visible, "found"].mean()), 4),
        "found_below_limit": round(float(particles.loc[~visible, "found"].mean()), 4),
        "by_rose_bin": by_bin,
        "pixel_iou_by_image_visibility": by_images,
        "error_budget": budget,
    }


if __name__ == "__main__":
    main()
