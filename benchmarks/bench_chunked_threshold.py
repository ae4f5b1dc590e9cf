"""Threshold baseline on a large montage: in memory vs chunked (Dask + dask-image).

Measured side by side in one run, on the same synthetic bright-field montage (default
8192² float32, 256 MiB: 1024² synthetic micrographs tiled with flips, a smooth
illumination ramp across the whole montage and fresh noise everywhere):

- ``in_memory``: :func:`antema_scale.segment.threshold_segment` with ``chunked=False``
  (whole-image SciPy filters and NumPy statistics);
- ``chunked_threads``: the chunked path (dask-image Gaussian over ``--chunk-px`` chunks,
  exact chunk-wise percentiles and Otsu histogram) on Dask's threaded scheduler, as
  from a user's main thread;
- ``chunked_sync``: the same on the synchronous scheduler, as inside a one-thread Dask
  worker;
- ``chunked_zarr``: the chunked path reading the image lazily from a Zarr array (chunks
  of ``--chunk-px``), threaded: the input never sits in memory as a whole.

Each measurement runs in a fresh Python process (so that its peak resident memory is its
own): wall time of the call, resident memory before the call (input loaded, modules
imported) and the peak during it (the kernel's high-water mark ``VmHWM``, reset just
before the call through ``/proc/self/clear_refs``; loading the input spikes higher than
the chunked call itself, so a lifetime ``ru_maxrss`` would hide its peak). Every variant's mask is compared with
the in-memory mask (number of differing pixels). Methods ``otsu`` and ``local`` (the
``local`` background uses ``--block-size-nm``; its default, a quarter of the shorter
side, would mean a 1024 px sigma on 8192² images and a kernel of 8193 taps, minutes on
either path). The record holds the machine and its load average: on the shared 2-core
development machine absolute times vary between runs, so compare within one record.

Usage::

    nice -n 10 python benchmarks/bench_chunked_threshold.py [--size 8192] [--methods otsu,local]
        [--chunk-px 2048] [--json benchmarks/results/bench_chunked_threshold.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = ("in_memory", "chunked_threads", "chunked_sync", "chunked_zarr")
PIXEL_SIZE_NM = 0.5
TILE = 1024


def montage(size: int, seed: int = 0) -> np.ndarray:
    """A ``size`` x ``size`` float32 bright-field montage of synthetic micrographs."""
    from antema_scale.synth import SynthConfig, generate_micrograph

    rng = np.random.default_rng(seed)
    tiles = []
    for index in range(4):
        config = SynthConfig(
            image_size=TILE,
            pixel_size_nm=PIXEL_SIZE_NM,
            mode="hrtem",
            diameter_mean_nm=8.0,
            area_fraction=0.2,
            overlap="low",
        )
        tiles.append(generate_micrograph(config, seed=seed + index).image.astype(np.float32))
    image = np.empty((size, size), dtype=np.float32)
    for i in range(0, size, TILE):
        for j in range(0, size, TILE):
            tile = tiles[rng.integers(len(tiles))]
            tile = tile[:: rng.choice((-1, 1)), :: rng.choice((-1, 1))]
            image[i : i + TILE, j : j + TILE] = tile[: size - i, : size - j]
    ramp = np.linspace(-0.1, 0.1, size, dtype=np.float32)
    image += ramp[:, None] + 0.5 * ramp[None, :]
    image += rng.normal(0.0, 0.02, size=image.shape).astype(np.float32)
    return image


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _reset_peak() -> str:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); the method used."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "ru_maxrss (not reset: peak may predate the call)"
    return "VmHWM reset before the call"


def _peak_mib() -> float:
    """Peak resident memory since the last reset (VmHWM), else the lifetime ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints a JSON line."""
    import dask.array as da

    from antema_scale.segment.threshold import threshold_segment

    work = Path(args.work)
    kwargs: dict[str, object] = {"method": args.method}
    if args.method == "local":
        kwargs["block_size_nm"] = args.block_size_nm
    if args.variant == "chunked_zarr":
        image: object = da.from_zarr(str(work / "image.zarr"))
    else:
        image = np.load(work / "image.npy")
    if args.variant == "in_memory":
        kwargs["chunked"] = False
    else:
        kwargs.update(
            chunked=True,
            chunk_px=args.chunk_px if args.variant != "chunked_zarr" else None,
            scheduler="synchronous" if args.variant == "chunked_sync" else "threads",
        )
    peak_method = _reset_peak()
    rss_before = _rss_mib()
    started = time.perf_counter()
    prediction = threshold_segment(image, PIXEL_SIZE_NM, **kwargs)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    peak = _peak_mib()
    np.save(work / f"mask-{args.method}-{args.variant}.npy", prediction.mask)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before_mib": rss_before,
                "peak_method": peak_method,
                "peak_rss_mib": peak,
                "peak_increase_mib": peak - rss_before,
                "particle_fraction": float(prediction.mask.mean()),
                "quality": {k: float(v) for k, v in prediction.quality.items()},
            }
        )
    )


def run_child(args: argparse.Namespace, work: Path, method: str, variant: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--work",
        str(work),
        "--method",
        method,
        "--variant",
        variant,
        "--chunk-px",
        str(args.chunk_px),
        "--block-size-nm",
        str(args.block_size_nm),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="montage side in pixels")
    parser.add_argument("--methods", default="otsu,local")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--chunk-px", type=int, default=2048)
    parser.add_argument(
        "--block-size-nm", type=float, default=32.0, help="local background block (nm)"
    )
    parser.add_argument(
        "--json", default=str(Path(__file__).parent / "results" / "bench_chunked_threshold.json")
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import dask.array as da

    from antema_scale.provenance import git_revision, hardware_fingerprint, software_versions

    methods = args.methods.split(",")
    variants = args.variants.split(",")
    load_start = os.getloadavg()
    started = time.perf_counter()
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chunked-threshold-") as tmp:
        work = Path(tmp)
        image = montage(args.size)
        np.save(work / "image.npy", image)
        if "chunked_zarr" in variants:
            da.from_array(image, chunks=args.chunk_px).to_zarr(str(work / "image.zarr"))
        del image
        for method in methods:
            results[method] = {}
            for variant in variants:
                record = run_child(args, work, method, variant)
                results[method][variant] = record
                print(
                    f"{method:5s} {variant:16s} {record['seconds']:7.2f} s  "
                    f"peak +{record['peak_increase_mib']:7.0f} MiB",
                    flush=True,
                )
            reference = np.load(work / f"mask-{method}-{variants[0]}.npy")
            for variant in variants:
                mask = np.load(work / f"mask-{method}-{variant}.npy")
                results[method][variant]["mask_pixels_differing_from_" + variants[0]] = int(
                    np.count_nonzero(mask != reference)
                )
            base = results[method].get("in_memory")
            if base:
                for variant in variants:
                    record = results[method][variant]
                    record["time_ratio_vs_in_memory"] = record["seconds"] / base["seconds"]
                    record["peak_increase_ratio_vs_in_memory"] = (
                        record["peak_increase_mib"] / base["peak_increase_mib"]
                    )
    output = {
        "benchmark": "bench_chunked_threshold",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "image": {
            "shape": [args.size, args.size],
            "dtype": "float32",
            "megabytes": args.size * args.size * 4 / 2**20,
            "pixel_size_nm": PIXEL_SIZE_NM,
            "content": "1024² synthetic bright-field micrographs tiled with flips + ramp + noise",
        },
        "chunk_px": args.chunk_px,
        "local_block_size_nm": args.block_size_nm,
        "notes": (
            "seconds: wall time of threshold_segment alone; peak_increase_mib: peak resident "
            "memory during the call minus resident memory before it (input already loaded, "
            "except chunked_zarr which reads it lazily). Each measurement in a fresh process."
        ),
        "results": results,
        "total_seconds": time.perf_counter() - started,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "hardware": hardware_fingerprint(),
        "software": software_versions(("numpy", "scipy", "scikit-image", "dask", "dask-image")),
        "git_revision": git_revision(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
