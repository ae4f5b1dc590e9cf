"""Sweep the inference settings of a model on a labelled split: scale adaptation and flips.

How the defaults of :func:`antema_scale.segment.predict` (``target_diameter_px``,
``max_refine_zoom``, ``flips``) were chosen: every setting runs on the same images of the
validation split (synthetic + EMPS, as ``antema-scale evaluate --synthetic 400 --emps``),
and the particle IoU, global accuracy and the fraction of images given a second pass are
printed per source. Choose on ``val``; report on ``test`` with ``antema-scale evaluate``.

Usage::

    python benchmarks/sweep_inference.py [--model PATH] [--split val]
        [--settings none:1:1,24:2:1,24:2:4] [--csv OUT.csv]

A setting is ``TARGET_PX:MAX_ZOOM:FLIPS`` (``none`` = no scale adaptation).
``--thresholds 0.4,0.5`` also scores masks cut at other particle probabilities than the
0.5 of :class:`antema_scale.segment.Prediction` (from the same predictions; the setting
column then reads ``TARGET:ZOOM:FLIPS@THRESHOLD``). ``--sigmas 1,1.5`` runs every setting
with other pre-filter blurs than the model's (Gaussian sigma in working-grid pixels,
``Preprocessing.sigma_px``; the column reads ``TARGET:ZOOM:FLIPS~SIGMA``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import EMPS_NOMINAL_PIXEL_SIZE_NM, LabelledImage
from antema_scale.segment.metrics import confusion_matrix
from antema_scale.segment.model_file import SegmentationModel
from antema_scale.segment.train import TrainConfig, load_split

EMPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "emps-train"


def labelled_split(
    model: SegmentationModel, split: str, synthetic: int, max_images: int | None
) -> list[LabelledImage]:
    """The images of ``split`` as ``antema-scale evaluate --synthetic N --emps`` draws them."""
    folders = [(str(EMPS / "images"), str(EMPS / "segmaps"), EMPS_NOMINAL_PIXEL_SIZE_NM)]
    config = TrainConfig(
        synthetic_images=synthetic,
        folders=folders if EMPS.is_dir() else [],
        pixel_size_range_nm=model.preprocessing.pixel_size_range_nm,
        max_images_per_source=max_images,
    )
    return load_split(config, split)


def pixel_counts(found: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Confusion counts (tp, fp, fn, tn) of a predicted mask against the true one."""
    (tn, fp), (fn, tp) = confusion_matrix(truth, found)
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)}


def pixel_summary(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Particle IoU and global accuracy per source and ``column``, pixels summed over images."""
    sums = table.groupby(["source", column])[["tp", "fp", "fn", "tn"]].sum()
    return pd.DataFrame(
        {
            "particle_iou": sums.tp / (sums.tp + sums.fp + sums.fn),
            "global_accuracy": (sums.tp + sums.tn) / sums.sum(axis=1),
        }
    )


def parse_setting(text: str) -> tuple[float | None, float, int]:
    """``"24:2:4"`` -> (24.0, 2.0, 4); ``"none:1:1"`` -> (None, 1.0, 1)."""
    target, zoom, flips = text.split(":")
    return (None if target == "none" else float(target)), float(zoom), int(flips)


def main() -> None:
    """Run every setting on the split and print the metrics per source."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--split", default="val")
    parser.add_argument("--settings", default="none:1:1,16:2:1,24:1.5:1,24:2:1,32:2:1,24:2:4")
    parser.add_argument("--synthetic", type=int, default=400)
    parser.add_argument("--max-images", type=int, default=None, help="per source (quick runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument(
        "--thresholds", default="0.5", help="comma-separated particle-probability cuts"
    )
    parser.add_argument(
        "--sigmas", default=None, help="comma-separated pre-filter sigmas (working px)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    own_sigma = model.preprocessing.sigma_px
    sigmas = [float(t) for t in args.sigmas.split(",")] if args.sigmas else [own_sigma]
    models = {
        sigma: dataclasses.replace(
            model, preprocessing=dataclasses.replace(model.preprocessing, sigma_px=sigma)
        )
        for sigma in sigmas
    }
    items = labelled_split(model, args.split, args.synthetic, args.max_images)
    settings = [parse_setting(t) for t in args.settings.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    rows = []
    for start in range(0, len(items), 8):
        chunk = items[start : start + 8]
        for (target, zoom, flips), sigma in itertools.product(settings, sigmas):
            predictions = predict(
                models[sigma],
                [i.image for i in chunk],
                [i.pixel_size_nm for i in chunk],
                target_diameter_px=target,
                max_refine_zoom=zoom,
                flips=flips,
            )
            for item, pred in zip(chunk, predictions, strict=True):
                truth = item.mask
                for cut in thresholds:
                    found = pred.mask if cut == 0.5 else pred.probability > cut
                    name = f"{target}:{zoom}:{flips}" + ("" if cut == 0.5 else f"@{cut}")
                    name += "" if sigma == own_sigma else f"~{sigma}"
                    rows.append(
                        {
                            "image_id": item.image_id,
                            "source": item.source,
                            "setting": name,
                            **pixel_counts(found, truth),
                            "refined": pred.quality["refine_zoom"] > 1,
                        }
                    )
        print(f"{min(start + 8, len(items))} / {len(items)} images", flush=True)
    table = pd.DataFrame(rows)
    if args.csv is not None:
        table.to_csv(args.csv, index=False)
    summary = pixel_summary(table, "setting")
    summary["refined_fraction"] = table.groupby(["source", "setting"]).refined.mean()
    print(summary.round(4).to_string())


if __name__ == "__main__":
    main()
