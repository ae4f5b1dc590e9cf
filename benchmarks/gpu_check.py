"""One prepared check for a machine with a GPU: same masks as the CPU, and how fast.

Run it once on a GPU machine (the development sessions are lent one only now and then, for
a few minutes)::

    python benchmarks/gpu_check.py --json $OUT/gpu_check.json [--images 8] [--batch 64]

It needs only torch, numpy, scipy, scikit-image, tifffile, pandas, h5py and psutil (all on
the image of the lent GPU machines; no dask or zarr: ``PYTHONPATH=.`` without installing
works), and:

1. segments ``--images`` synthetic 512² micrographs with exact masks (validation seeds of
   ``antema-scale train``, bright field and HAADF in turn) with the shipped model and the
   default inference on the CPU in float32, on CUDA in float32 and on CUDA in the default
   autocast (bfloat16/float16), and reports per device and precision the particle IoU
   against the truth, the largest probability difference to the CPU and the share of
   pixels whose mask differs from the CPU's;
2. times ``predict`` on ``--batch`` 1024² images in range (8 distinct, repeated) with
   batches of 16 tiles: the default 8 views and the network alone (``flips=1``), in the
   default autocast, as images/s, and the host work alone (network replaced by a no-op,
   ``bench_inference.host_work_rows``) on one and on ``torch.get_num_threads()`` threads;
3. trains a width-16 network on CUDA for two short epochs (``--train-steps`` steps of 16
   tiles each, 24 synthetic 256² images, the default autocast), resumes it for a third,
   and reports the losses, steps/s, and whether the checkpoint loads and predicts;
4. writes everything, with the machine's description, to ``--json``.

Without CUDA it runs step 1 on the CPU only and skips the rest (so it can be tested
anywhere).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from antema_scale.provenance import hardware_fingerprint, software_versions
from antema_scale.segment import load_model, predict
from antema_scale.segment.datasets import standin_micrograph, synthetic_images
from antema_scale.segment.metrics import confusion_matrix, pixel_metrics
from antema_scale.segment.train import SYNTH_SEED_BASE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import host_work_rows  # noqa: E402

SIZE = 1024


def agreement(images: int) -> list[dict[str, object]]:
    """Per device and precision: IoU against the truth and difference to the CPU."""
    items = list(synthetic_images(range(SYNTH_SEED_BASE["val"], SYNTH_SEED_BASE["val"] + images)))
    truth = np.stack([i.mask for i in items])
    runs = [("cpu", "fp32")] + (
        [("cuda", "fp32"), ("cuda", "auto")] if torch.cuda.is_available() else []
    )
    reference: np.ndarray | None = None
    rows = []
    for device, precision in runs:
        model = load_model(None, device=device)
        found = predict(
            model, [i.image for i in items], [i.pixel_size_nm for i in items], precision=precision
        )
        probability = np.stack([p.probability for p in found])
        mask = probability > 0.5
        row: dict[str, object] = {
            "device": device,
            "precision": precision,
            "particle_iou": pixel_metrics(confusion_matrix(truth, mask))["iou_particle"],
        }
        if reference is None:
            reference = probability
        else:
            row["max_probability_difference_to_cpu"] = float(np.abs(probability - reference).max())
            row["mask_pixels_differing_from_cpu"] = float((mask != (reference > 0.5)).mean())
        rows.append(row)
    return rows


def throughput(batch: int) -> list[dict[str, object]]:
    """images/s of ``predict`` on CUDA (default autocast), and the host work alone
    (:func:`bench_inference.host_work_rows`, on 1 and all host threads)."""
    model = load_model(None, device="cuda")
    lo, hi = model.preprocessing.pixel_size_range_nm
    pixel = (lo * hi) ** 0.5
    distinct = [standin_micrograph(s, (SIZE, SIZE), pixel_size_nm=pixel).image for s in range(8)]
    images = (distinct * (batch // 8 + 1))[:batch]
    rows: list[dict[str, object]] = []
    for label, flips in (("default inference (8 views)", 8), ("network alone (flips=1)", 1)):
        warm = images[:16]
        predict(model, warm, [pixel] * len(warm), batch_size=16, flips=flips)  # warm-up
        torch.cuda.synchronize()
        started = time.perf_counter()
        predict(model, images, [pixel] * len(images), batch_size=16, flips=flips)
        torch.cuda.synchronize()
        rows.append(
            {
                "case": label,
                "images": len(images),
                "images_per_s": len(images) / (time.perf_counter() - started),
            }
        )
    return rows + host_work_rows(model, torch.get_num_threads(), repeat=1)


def training(steps: int, device: str = "cuda") -> dict[str, object]:
    """Two short epochs of ``antema-scale train`` on ``device``, resumed for a third."""
    import tempfile

    from antema_scale.segment.train import Augmentation, TrainConfig, train

    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(
            output_dir=folder,
            synthetic_images=24,
            synthetic_shape=(256, 256),
            epochs=2,
            steps_per_epoch=steps,
            batch_size=16,
            augmentation=Augmentation(tile=128),
            device=device,
        )
        first = train(config)
        config.epochs = 3
        resumed = train(config, resume=True)
        model = load_model(Path(folder) / "last.pt", device=device)
        image = standin_micrograph(0, (256, 256), pixel_size_nm=0.25)
        (found,) = predict(model, [image.image], [image.pixel_size_nm])
    history = resumed["history"]
    seconds = sum(h["train_seconds"] for h in history)
    return {
        "losses": [h["loss"] for h in history],
        "epochs_before_resume": first["epochs"],
        "steps_per_s": len(history) * steps / seconds,
        "checkpoint_predicts": bool(found.mask.shape == image.mask.shape),
        "particle_fraction_after_training": float(found.mask.mean()),
    }


def main() -> None:
    """Run the checks, print them and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="synthetic images compared")
    parser.add_argument("--batch", type=int, default=64, help="1024² images timed per case")
    parser.add_argument("--train-steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {
        "cuda": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "agreement": agreement(args.images),
    }
    if torch.cuda.is_available():
        results["throughput_1024"] = throughput(args.batch)
        results["training"] = training(args.train_steps)
    results["hardware"] = hardware_fingerprint()
    results["software"] = software_versions()
    print(
        json.dumps(
            {k: v for k, v in results.items() if k not in ("hardware", "software")}, indent=1
        )
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
