"""Segmentation inference speed: seconds per 1024 x 1024 micrograph, and network widths.

Measured side by side in one run on the same images:

1. the model (default: the shipped one) through :func:`antema_scale.segment.predict` on a
   1024² synthetic image at three pixel sizes: inside the working range (no resampling),
   finer than it (shrunk) and coarser than it (enlarged 2x per side, i.e. 4x the pixels),
   with the default tiling and 8 views, and in range with 4, 2 and 1 views and
   with one 1024² tile (ratios to the default), and in bfloat16 (``precision="bf16"``,
   timed alternately with float32; ratio to that);
2. the bare network forward pass on 1024² for random-init ResNet-18 DeepLabV3+ of base
   widths 16, 24, 32 and 64 (64 = the standard ResNet-18) and width 16 with a 16-channel
   detail refinement, as ratios to the shipped architecture;
3. scale adaptation: an image of 1-2 nm particles segmented with and without the second,
   2x finer pass (the worst case, ratios to the in-range image);
4. the host work of :func:`~antema_scale.segment.predict` alone (resampling, filtering,
   intensity statistics, tiling and blending, measuring, quality signal), with the
   network replaced by a no-op: milliseconds per 1024² image over 16 images, on one host
   thread and on ``--threads`` (ratio to one). Its inverse bounds the images/s of any
   accelerator fed by this CPU;
5. on a CUDA device, when there is one: images/s at 1024² with batches of 16, with the
   default 8 views and with the network alone (``flips=1``) in the default bf16/fp16
   autocast, and with 8 views in float32 (``precision="fp32"``).

Each measurement is the median of ``--repeat`` runs after one warm-up run. The load
average at the end is recorded: on a shared machine the absolute seconds are upper bounds.

Usage::

    python benchmarks/bench_inference.py [--model PATH] [--threads 2] [--repeat 3]
        [--json benchmarks/results/bench_inference.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from antema_scale.provenance import hardware_fingerprint, software_versions
from antema_scale.segment.datasets import standin_micrograph
from antema_scale.segment.model_file import SegmentationModel, load_model
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.precision import cpu_has_native_bf16

SIZE = 1024


def _median_seconds(run: Callable[[], object], repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _interleaved_median_seconds(runs: list[Callable[[], object]], repeat: int) -> list[float]:
    """Median seconds of each of ``runs``, timed in turn ``repeat`` times after a warm-up."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, spent in zip(runs, times, strict=True):
            started = time.perf_counter()
            run()
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) for spent in times]


class ZeroLogits(torch.nn.Module):
    """Stands in for the network: zero logits of the input's size (no work at all)."""

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(batch[:, :1])


def host_work_rows(model: SegmentationModel, threads: int, repeat: int) -> list[dict]:
    """Seconds per 1024² image of ``predict``'s work outside the network, on 1 and
    ``threads`` host threads (16 distinct in-range images, default 8 views)."""
    from antema_scale.segment.inference import predict

    lo, hi = model.preprocessing.pixel_size_range_nm
    images = [
        standin_micrograph(seed, (SIZE, SIZE), pixel_size_nm=(lo * hi) ** 0.5).image
        for seed in range(16)
    ]
    host_only = copy.copy(model)
    host_only.inference_network = ZeroLogits  # type: ignore[method-assign]
    seconds = {
        n: _median_seconds(
            lambda n=n: predict(
                host_only, images, [(lo * hi) ** 0.5] * len(images), batch_size=16, host_threads=n
            ),
            repeat,
        )
        / len(images)
        for n in sorted({1, threads})
    }
    return [
        {
            "case": f"host work per 1024² image, {n} thread{'s' if n > 1 else ''}",
            "seconds": value,
            "ratio": value / seconds[1],
            "note": f"network a no-op: at most {1 / value:.0f} images/s on any accelerator",
        }
        for n, value in seconds.items()
    ]


def main() -> None:
    """Run the benchmark, print a table and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model file (default: shipped)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from antema_scale.segment.inference import predict

    model = load_model(args.model, device="cpu")
    lo, hi = model.preprocessing.pixel_size_range_nm
    results: dict[str, object] = {
        "threads": args.threads,
        "model_width": model.network.config.base_width,
        "model_sha256": model.metadata.get("weights_sha256"),
        "working_range_nm": [lo, hi],
    }
    rows = []
    for label, pixel in (("in range", (lo * hi) ** 0.5), ("finer", lo / 2), ("coarser", hi * 2)):
        item = standin_micrograph(0, (SIZE, SIZE), pixel_size_nm=pixel)
        seconds = _median_seconds(
            lambda item=item: predict(model, [item.image], [item.pixel_size_nm], batch_size=4),
            args.repeat,
        )
        rows.append({"case": f"predict 1024² {label} ({pixel:.3f} nm/px)", "seconds": seconds})
    item = standin_micrograph(0, (SIZE, SIZE), pixel_size_nm=(lo * hi) ** 0.5)
    for flips in (4, 2, 1):
        seconds = _median_seconds(
            lambda flips=flips: predict(
                model, [item.image], [item.pixel_size_nm], batch_size=4, flips=flips
            ),
            args.repeat,
        )
        rows.append(
            {
                "case": f"predict 1024² in range, flips={flips} (default 8)",
                "seconds": seconds,
                "ratio": seconds / rows[0]["seconds"],  # type: ignore[operator]
            }
        )
    # bfloat16 autocast on the CPU: fast only where the CPU has it natively (AMX or
    # AVX512-BF16); elsewhere it is emulated (slower than float32) and warns. Timed
    # alternately with the default (float32), so that load changes hit both alike.
    native = cpu_has_native_bf16()
    results["cpu_native_bf16"] = native
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fp32, bf16 = _interleaved_median_seconds(
            [
                lambda precision=precision: predict(
                    model, [item.image], [item.pixel_size_nm], batch_size=4, precision=precision
                )
                for precision in ("fp32", "bf16")
            ],
            2 * args.repeat,
        )
    rows.append(
        {
            "case": f"predict 1024² in range, precision=bf16 ({'native' if native else 'emulated'})",
            "seconds": bf16,
            "ratio": bf16 / fp32,
            "note": f"ratio to fp32 timed alternately with it ({fp32:.3f} s)",
        }
    )
    one_tile = _median_seconds(
        lambda: predict(model, [item.image], [item.pixel_size_nm], batch_size=4, tile=1024),
        args.repeat,
    )
    rows.append(
        {
            "case": "predict 1024² in range, one 1024² tile",
            "seconds": one_tile,
            "ratio": one_tile / rows[0]["seconds"],  # type: ignore[operator]
        }
    )
    # Scale adaptation: an image of 1-2 nm particles (4-8 working px) is segmented twice,
    # the second time on a 2x finer grid (4x the pixels): the worst case.
    small = standin_micrograph(
        1, (SIZE, SIZE), pixel_size_nm=(lo * hi) ** 0.5, diameter_nm=(1.0, 2.0)
    )
    (refined,) = predict(model, [small.image], [small.pixel_size_nm], batch_size=4)
    for label, target in (("scale adaptation on", "default"), ("scale adaptation off", None)):
        kwargs = {} if target == "default" else {"target_diameter_px": None}
        seconds = _median_seconds(
            lambda kwargs=kwargs: predict(
                model, [small.image], [small.pixel_size_nm], batch_size=4, **kwargs
            ),
            args.repeat,
        )
        rows.append(
            {
                "case": f"predict 1024² 1-2 nm particles, {label}",
                "seconds": seconds,
                "ratio": seconds / rows[0]["seconds"],  # type: ignore[operator]
                "refine_zoom": refined.quality["refine_zoom"] if target else 1.0,
            }
        )
    rows += host_work_rows(model, args.threads, args.repeat)
    x = torch.zeros(1, 1, SIZE, SIZE)
    forward: dict[tuple[int, int, int], float] = {}
    for width, detail, stride in (
        (16, 0, 16),
        (16, 16, 16),
        (16, 0, 8),
        (24, 0, 16),
        (32, 0, 16),
        (64, 0, 16),
    ):
        net = build_network(
            NetworkConfig(base_width=width, detail_channels=detail, output_stride=stride)
        ).eval()
        with torch.inference_mode():
            forward[width, detail, stride] = _median_seconds(lambda net=net: net(x), args.repeat)
    config = model.network.config  # an ensemble has no width of its own: width 16 is the ref
    own = tuple(getattr(config, k, 0) for k in ("base_width", "detail_channels", "output_stride"))
    ref = forward.get(own, forward[16, 0, 16])
    for (width, detail, stride), seconds in forward.items():
        name = f"forward 1024² width {width}" + (f" + detail {detail}" if detail else "")
        name += f", output stride {stride}" if stride != 16 else ""
        rows.append({"case": name, "seconds": seconds, "ratio": seconds / ref})
    if torch.cuda.is_available():
        gpu = load_model(args.model, device="cuda")
        distinct = [
            standin_micrograph(i, (SIZE, SIZE), pixel_size_nm=(lo * hi) ** 0.5).image
            for i in range(8)
        ]
        images = distinct * 8
        # the default inference (bf16/fp16 autocast), the network alone, float32
        for flips, precision in ((8, "auto"), (1, "auto"), (8, "fp32")):
            seconds = _median_seconds(
                lambda flips=flips, precision=precision: predict(
                    gpu,
                    images,
                    [(lo * hi) ** 0.5] * 64,
                    batch_size=16,
                    flips=flips,
                    precision=precision,
                ),
                args.repeat,
            )
            torch.cuda.synchronize()
            rows.append(
                {
                    "case": f"cuda predict 64 x 1024², batch 16, flips={flips}, {precision}",
                    "images_per_s": 64 / seconds,
                }
            )
    results["rows"] = rows
    results["load_average_1_5_15_min_at_end"] = list(os.getloadavg())
    results["hardware"] = hardware_fingerprint()
    results["software"] = software_versions()
    for row in rows:
        extra = f"  x{row['ratio']:.2f}" if "ratio" in row else ""
        value = (
            f"{row['seconds']:.3f} s" if "seconds" in row else f"{row['images_per_s']:.1f} img/s"
        )
        print(f"{row['case']:<48} {value}{extra}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
