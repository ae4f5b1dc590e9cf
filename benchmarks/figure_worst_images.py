"""Figure of the synthetic images a model segments worst: image, true mask, probability.

Reads the ``per_image.csv`` of an ``antema-scale evaluate`` run, regenerates the ``--n``
synthetic images with the lowest particle IoU from their ids (``synth-<mode>-<overlap>-<seed>``)
and draws the top-left ``--crop`` pixels of each. Used for docs/figures/ of the model card.

Usage::

    python benchmarks/figure_worst_images.py runs/eval_ft_val/per_image.csv \
        -o docs/figures/worst_val_brightfield.png [--model PATH] [--n 3] [--crop 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from antema_scale.segment import load_model, predict  # noqa: E402
from antema_scale.segment.datasets import synthetic_images  # noqa: E402


def main() -> None:
    """Draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_image", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--crop", type=int, default=200)
    args = parser.parse_args()
    rows = pd.read_csv(args.per_image)
    worst = rows[rows.source == "synth"].nsmallest(args.n, "iou_particle")
    model = load_model(args.model, device="cpu")
    fig, axes = plt.subplots(len(worst), 3, figsize=(9, 3 * len(worst)), squeeze=False)
    window = (slice(0, args.crop), slice(0, args.crop))
    for row, image_id in zip(axes, worst.image_id, strict=True):
        _, mode, overlap, seed = image_id.split("-")
        (item,) = synthetic_images([int(seed)], modes=(mode,), overlaps=(overlap,))
        (pred,) = predict(model, [item.image], [item.pixel_size_nm])
        iou = (pred.mask & item.mask).sum() / max(1, (pred.mask | item.mask).sum())
        row[0].imshow(item.image[window], cmap="gray")
        row[0].set_title(f"{image_id}\n{item.pixel_size_nm:.3f} nm/px", fontsize=8)
        row[1].imshow(item.mask[window])
        row[1].set_title("true mask", fontsize=8)
        row[2].imshow(pred.probability[window], vmin=0, vmax=1)
        flag = "flagged OOD" if pred.quality["out_of_distribution"] else "not flagged"
        row[2].set_title(f"probability: IoU {iou:.2f}, {flag}", fontsize=8)
    for axis in axes.ravel():
        axis.axis("off")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=50)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
