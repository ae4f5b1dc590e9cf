"""How much a model's validation results hang on its batch-norm statistics.

A network trained with batch norm normalises, at inference, with running means and
variances that training kept as a moving average of its last batches (momentum 0.1: about
the last ten). This benchmark re-estimates them for a model file, weights untouched, as
the plain average over ``--batches`` fresh training batches (the training sampler and the
stage-2 augmentation of ``antema-scale train``), and validates the model before and after
on the validation images of a training run (one pass, as during training). A large change
means that any fine-tune, whose batches move the statistics, changes the predictions even
where its weights barely move: the reason for ``train --freeze-batch-norm``.

The prepared images come from the cache a training run leaves in its output folder
(``data-train-*.npz``, ``data-val-*.npz``), so the run must have been made with the data
the model should be judged on.

Usage::

    python benchmarks/batch_norm_statistics.py RUN_DIR [--model PATH] [--batches 150]
        [--without-added-scenes] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from antema_scale.segment.augment import Augmentation, PreparedImage, sample_batch
from antema_scale.segment.model_file import load_model
from antema_scale.segment.train import (
    ADDED_SCENE_PREFIXES,
    _source_weights,
    read_prepared_cache,
    validate,
)


def cached_split(run_dir: Path, split: str) -> list[PreparedImage]:
    """The prepared images of one split from a training run's cache."""
    files = sorted(run_dir.glob(f"data-{split}-*.npz"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one data-{split}-*.npz in {run_dir}, found {len(files)}")
    return read_prepared_cache(files[0])


def recalibrate_batch_norm(
    network: torch.nn.Module,
    images: list[PreparedImage],
    batches: int,
    *,
    augmentation: Augmentation | None = None,
    batch_size: int = 8,
    seed: int = 0,
) -> torch.nn.Module:
    """Replace the running statistics of every batch norm by their average over batches.

    The weights are not changed; dropout is off while the batches pass. Images are drawn
    as in training (every source equally often). Returns ``network``, in eval mode.
    """
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    network.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain (cumulative) average of the batches' statistics
        norm.train()
    rng = np.random.default_rng(seed)
    weights = _source_weights(images)
    augmentation = augmentation or Augmentation(scale=(0.7, 2.0))
    with torch.no_grad():
        for _ in range(batches):
            x, _ = sample_batch(images, batch_size, augmentation, rng, weights)
            network(x)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return network.eval()


def _summary(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = ("iou_particle", "instance_f1", "global_accuracy")
    return {s: {k: round(float(m[k]), 4) for k in keys} for s, m in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="training output folder with its data cache")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument(
        "--without-added-scenes",
        action="store_true",
        help="leave the sparse and raft scenes of --sparse/--raft-training out of the batches",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_images = cached_split(args.run_dir, "train")
    if args.without_added_scenes:
        train_images = [p for p in train_images if not p.image_id.startswith(ADDED_SCENE_PREFIXES)]
    val_images = cached_split(args.run_dir, "val")
    model = load_model(args.model, device="cpu")
    before = _summary(validate(model.network, val_images, torch.device("cpu")))
    recalibrate_batch_norm(model.network, train_images, args.batches, seed=args.seed)
    after = _summary(validate(model.network, val_images, torch.device("cpu")))
    result: dict[str, Any] = {
        "model": args.model or "shipped",
        "run_dir": str(args.run_dir),
        "batches": args.batches,
        "without_added_scenes": args.without_added_scenes,
        "before": before,
        "after": after,
    }
    for source in before:
        b, a = before[source], after[source]
        print(
            f"{source:6s} particle IoU {b['iou_particle']:.4f} -> {a['iou_particle']:.4f}   "
            f"instance F1 {b['instance_f1']:.4f} -> {a['instance_f1']:.4f}"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
