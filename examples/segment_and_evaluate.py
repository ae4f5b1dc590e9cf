"""Segment synthetic micrographs with the shipped model and score them against their truth.

Usage::

    python examples/segment_and_evaluate.py [-o runs/example_evaluation] [--images 4]
        [--size 512] [--flips 8]

The synthetic generator gives every micrograph an exact particle mask, so the whole
segmentation path can be checked without labelled data of one's own:

1. draw ``--images`` micrographs, bright-field TEM and HAADF-STEM in turn, with the
   training sampler of :mod:`antema_scale.segment.datasets` (seeds far from every split
   the shipped model was trained, selected or tested on);
2. segment them with :func:`antema_scale.segment.predict` (the default inference: 8 views,
   scale adaptation) and print, per image, the particle IoU, the quality signal and
   whether the image is flagged as out of distribution;
3. score the same predictions with :func:`antema_scale.segment.evaluate` and write its report
   (``metrics.md``, ``confusion_matrix.png``, ``diameters.png``, ...) to ``-o``.

The same report for your own labelled images: ``antema-scale evaluate --folder
IMAGES:MASKS:PIXEL_NM --split test`` (see ``antema-scale evaluate --help``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import LabelledImage, synthetic_images
from antema_scale.segment.evaluate import evaluate
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics

#: Seeds of the example images: above every range that training, validation, test, the
#: dense-raft scenes (``segment.train.*SEED_BASE``: 1,000,000 to 5,000,000 and up) and the
#: touching-particle benchmark (6,000,000 and up) draw from.
FIRST_SEED = 9_000_000


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    """Run the example; returns the evaluation summary (``{source: metrics}``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/example_evaluation"))
    parser.add_argument("--images", type=int, default=4, help="micrographs to draw")
    parser.add_argument("--size", type=int, default=512, help="side of each micrograph, px")
    parser.add_argument("--flips", type=int, default=8, choices=(1, 2, 4, 8))
    args = parser.parse_args(argv)

    model = load_model()  # the shipped model, on the GPU when there is one
    seeds = range(FIRST_SEED, FIRST_SEED + args.images)
    items: list[LabelledImage] = list(synthetic_images(seeds, shape=(args.size, args.size)))

    predictions = predict(
        model, [i.image for i in items], [i.pixel_size_nm for i in items], flips=args.flips
    )
    print(f"{'image':<28} {'nm/px':>6} {'IoU':>6} {'margin':>7} {'zoom':>5}  flagged")
    for item, prediction in zip(items, predictions, strict=True):
        quality = prediction.quality
        iou = pixel_metrics(confusion_matrix(item.mask, prediction.mask))["iou_particle"]
        print(
            f"{item.image_id:<28} {item.pixel_size_nm:6.3f} "
            f"{iou:6.3f} {quality['mean_margin']:7.3f} "
            f"{quality['zoom']:5.2f}  {'yes' if quality['out_of_distribution'] else 'no'}"
        )

    # evaluate() takes any segmenter: a callable from labelled images to predictions
    # (network_segmenter(model) runs the model itself); here, the predictions above.
    done = iter(predictions)
    result = evaluate(lambda batch: [next(done) for _ in batch], items)
    written = result.write(args.output)
    overall = result.summary["all"]
    print(
        f"\nall {overall['images']} images: particle IoU {overall['iou_particle']:.3f}, "
        f"Dice {overall['dice_particle']:.3f}, global accuracy {overall['global_accuracy']:.3f}, "
        f"instance F1 {overall['instance_f1']:.3f}"
    )
    print("wrote " + ", ".join(str(path) for path in written))
    return result.summary


if __name__ == "__main__":
    main()
