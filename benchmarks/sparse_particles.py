"""Sparse particles on an uneven background: how much empty support the model marks.

The training, validation and test images of ``antema-scale train`` are 512² px with 5-40 %
of their area covered by particles. Real micrographs are often larger and sparser. This
benchmark draws ``--scenes`` micrographs of ``--size``² px with 1 % coverage (4 nm
particles at 0.3 nm/px, clustered; bright field and HAADF in turn; the rest of each
configuration, background gradient included, from the training sampler; seeds from
:data:`SPARSE_SEED_BASE`, held out from every split) and segments each with the model's
default inference, once whole and once cut into 512² pieces (one tile each, so every
piece is normalised on its own). Per scene it prints and records the fraction of the image
marked as particle where there is none, the particle IoU and the scale-adaptation zoom.

Usage::

    python benchmarks/sparse_particles.py [--model PATH] [--scenes 8] [--size 2048]
        [--json benchmarks/results/sparse_particles.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import cycled_mode, sample_synth_config
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
from antema_scale.synth import SyntheticMicrograph, generate_micrograph

#: Seeds of the scenes: above every range of ``segment.train`` and the touching benchmark.
SPARSE_SEED_BASE = 7_000_001
#: Side of the pieces the scene is also segmented in (the default largest tile).
PIECE = 512


def sparse_scene(index: int, size: int) -> SyntheticMicrograph:
    """The ``index``-th scene: 1 % coverage of 4 nm particles at 0.3 nm/px, clustered."""
    seed = SPARSE_SEED_BASE + index
    mode, _ = cycled_mode(index)
    config = sample_synth_config(seed, mode=mode, overlap="low", shape=(size, size))
    config = dataclasses.replace(
        config,
        area_fraction=0.01,
        pixel_size_nm=0.3,
        diameter_mean_nm=4.0,
        arrangement="clustered",
    )
    return generate_micrograph(config, seed)


def scene_row(model: object, scene: SyntheticMicrograph) -> dict[str, object]:
    """False-particle fraction and IoU of the whole image and of its 512² pieces."""
    image = np.asarray(scene.image, dtype=np.float32)
    truth = np.asarray(scene.mask, dtype=bool)
    (whole,) = predict(model, [image], [scene.pixel_size_nm])  # type: ignore[arg-type]
    corners = [
        (y, x) for y in range(0, image.shape[0], PIECE) for x in range(0, image.shape[1], PIECE)
    ]
    pieces = predict(
        model,  # type: ignore[arg-type]
        [image[y : y + PIECE, x : x + PIECE] for y, x in corners],
        [scene.pixel_size_nm] * len(corners),
    )
    joined = np.zeros_like(truth)
    for (y, x), piece in zip(corners, pieces, strict=True):
        joined[y : y + PIECE, x : x + PIECE] = piece.mask

    def scores(found: np.ndarray) -> dict[str, float]:
        counts = confusion_matrix(truth, found)
        return {
            "false_fraction": float(counts[0, 1] / counts.sum()),
            "particle_iou": pixel_metrics(counts)["iou_particle"],
        }

    return {
        "mode": scene.config.mode,
        "gradient": float(scene.config.gradient),
        "coverage": float(truth.mean()),
        "whole": {**scores(whole.mask), "refine_zoom": float(whole.quality["refine_zoom"])},
        "pieces": scores(joined),
    }


def main() -> None:
    """Run the scenes, print one line each and a summary, and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="auto")
    rows = []
    for index in range(args.scenes):
        row = scene_row(model, sparse_scene(index, args.size))
        rows.append(row)
        whole, pieces = row["whole"], row["pieces"]
        print(
            f"{SPARSE_SEED_BASE + index} {row['mode']:<5} gradient {row['gradient']:.2f}  "
            f"whole: false {whole['false_fraction']:.4f} IoU {whole['particle_iou']:.3f} "
            f"zoom {whole['refine_zoom']:.2f}  pieces: false {pieces['false_fraction']:.4f} "
            f"IoU {pieces['particle_iou']:.3f}",
            flush=True,
        )
    summary = {
        way: {
            "median_false_fraction": float(np.median([r[way]["false_fraction"] for r in rows])),
            "worst_false_fraction": float(max(r[way]["false_fraction"] for r in rows)),
            "scenes_with_over_1_percent_false": int(
                sum(r[way]["false_fraction"] > 0.01 for r in rows)
            ),
        }
        for way in ("whole", "pieces")
    }
    print(json.dumps(summary, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": str(args.model or "shipped"),
                    "size": args.size,
                    "scenes": rows,
                    "summary": summary,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
