"""Benchmark: tracking accuracy and speed on constructed in-situ movie tables.

Each movie is a particle table (no pixels): particles placed at random with a minimum
spacing in a 1000 x 1000 nm field, moving by Brownian jitter (sigma ``jitter`` nm per
frame) on a stage drifting by ``drift`` nm per frame along a slowly turning direction,
with 0.3 nm centroid noise and 2 % size noise; 2 % of particles per frame are missed
(segmentation misses), which ``memory=1`` bridges. Known identities give tracking purity
and completeness (definitions in ``antema_scale.insitu.tracking.tracking_scores``).

For every (density, drift) condition the same movie is tracked three times in this
process: without drift correction, with it (first pass at the 4 nm search range), and with
a wide 12 nm drift-measuring first pass (``drift_search_range_nm``); reported side by side
with wall-time ratios. A last block measures the growth rate of growing particles (known rate) and the
relative error of the recovered rates. A third block runs synthetic movies
(``antema_scale.synth.generate_movie``) through tracking and event detection from their
truth tables, from their exact masks and from threshold-segmented frames.

Run: ``nice -n 10 python benchmarks/bench_tracking.py [--frames 100] [--seeds 0 1 2]
[--synthetic-seeds 1 2 3]``
Writes ``benchmarks/results/bench_tracking.json``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from antema_scale.insitu import growth_rates, track_particles, tracking_scores  # noqa: E402
from antema_scale.provenance import git_revision, hardware_fingerprint, software_versions  # noqa: E402

FIELD_NM = 1000.0


def place(n: int, min_spacing_nm: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions (nm) at least ``min_spacing_nm`` apart (dart throwing)."""
    points: list[np.ndarray] = []
    attempts = 0
    while len(points) < n and attempts < 200 * n:
        attempts += 1
        candidate = rng.uniform(0.0, FIELD_NM, 2)
        if not points or np.min(np.hypot(*(np.array(points) - candidate).T)) >= min_spacing_nm:
            points.append(candidate)
    return np.array(points)


def movie_table(
    *,
    n_particles: int,
    n_frames: int,
    drift_nm: float,
    jitter_nm: float,
    seed: int,
    growth_nm_per_frame: float = 0.0,
    miss_fraction: float = 0.02,
) -> pd.DataFrame:
    """One constructed movie (see the module docstring); ``truth_id`` = identity."""
    rng = np.random.default_rng(seed)
    positions = place(n_particles, 15.0, rng)
    diameters = rng.uniform(4.0, 12.0, len(positions))
    direction = rng.uniform(0.0, 2 * np.pi)
    stage = np.zeros(2)
    frames = []
    for frame in range(n_frames):
        if frame:
            positions = positions + rng.normal(0.0, jitter_nm, positions.shape)
            direction += rng.normal(0.0, 0.05)
            stage = stage + drift_nm * np.array([np.sin(direction), np.cos(direction)])
        diameter = (diameters + growth_nm_per_frame * frame) * (
            1 + rng.normal(0.0, 0.02, len(diameters))
        )
        measured = positions + stage + rng.normal(0.0, 0.3, positions.shape)
        seen = rng.random(len(positions)) >= miss_fraction
        frames.append(
            pd.DataFrame(
                {
                    "frame": frame,
                    "time_s": 0.1 * frame,
                    "centroid_y_nm": measured[seen, 0],
                    "centroid_x_nm": measured[seen, 1],
                    "equivalent_diameter_nm": diameter[seen],
                    "area_nm2": np.pi * diameter[seen] ** 2 / 4.0,
                    "truth_id": np.flatnonzero(seen),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def timed_tracking(
    movie: pd.DataFrame,
    *,
    search_range_nm: float,
    correct_drift: bool,
    max_drift_nm: float | None = None,
) -> dict[str, float]:
    """Track ``movie`` once (memory 1); scores against ``truth_id`` and wall time."""
    started = time.perf_counter()
    tracks = track_particles(
        movie,
        search_range_nm=search_range_nm,
        memory=1,
        correct_drift=correct_drift,
        drift_search_range_nm=max_drift_nm,
    )
    seconds = time.perf_counter() - started
    scores = tracking_scores(tracks)
    return {
        "purity": scores["purity"],
        "completeness": scores["completeness"],
        "tracks": scores["n_tracks"],
        "seconds": seconds,
        "detections_per_s": len(movie) / seconds,
    }


def tracking_block(frames: int, seeds: list[int]) -> list[dict[str, object]]:
    rows = []
    for n_particles, label in (
        (100, "sparse (100/um2)"),
        (400, "moderate (400/um2)"),
        (1200, "dense (1200/um2)"),
    ):
        for drift in (0.0, 3.0, 8.0):
            for seed in seeds:
                movie = movie_table(
                    n_particles=n_particles,
                    n_frames=frames,
                    drift_nm=drift,
                    jitter_nm=0.8,
                    seed=seed,
                )
                raw = timed_tracking(movie, search_range_nm=4.0, correct_drift=False)
                corrected = timed_tracking(movie, search_range_nm=4.0, correct_drift=True)
                wide = timed_tracking(
                    movie, search_range_nm=4.0, correct_drift=True, max_drift_nm=12.0
                )
                rows.append(
                    {
                        "density": label,
                        "drift_nm_per_frame": drift,
                        "seed": seed,
                        "detections": len(movie),
                        "without_drift_correction": raw,
                        "drift_correction": corrected,
                        "drift_correction_max_drift_12nm": wide,
                        "time_ratio_corrected_over_raw": corrected["seconds"] / raw["seconds"],
                        "time_ratio_wide_over_raw": wide["seconds"] / raw["seconds"],
                    }
                )
                print(
                    f"{label:20s} drift {drift:4.1f} seed {seed} | "
                    + " | ".join(
                        f"{name} P {r['purity']:.4f} C {r['completeness']:.4f} {r['detections_per_s']:.0f} det/s"
                        for name, r in (("raw", raw), ("corr", corrected), ("wide", wide))
                    ),
                    flush=True,
                )
    return rows


def growth_block(frames: int, seeds: list[int]) -> dict[str, float]:
    errors = []
    for seed in seeds:
        movie = movie_table(
            n_particles=200,
            n_frames=frames,
            drift_nm=2.0,
            jitter_nm=0.5,
            seed=seed,
            growth_nm_per_frame=0.05,
        )
        tracks = track_particles(movie, search_range_nm=4.0, memory=1)
        rates = growth_rates(tracks, min_points=frames // 2)
        errors.extend(
            np.abs(rates["growth_rate_nm_per_s"] / 0.5 - 1.0)
        )  # 0.05 nm/frame at 0.1 s/frame
    return {
        "true_rate_nm_per_s": 0.5,
        "tracks": len(errors),
        "median_relative_error": float(statistics.median(errors)),
        "p95_relative_error": float(np.percentile(errors, 95)),
        "fraction_within_5_percent": float(np.mean(np.array(errors) <= 0.05)),
    }


def _true_identities(detections: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """Particle id of the nearest true particle, NaN beyond its equivalent radius."""
    from scipy.spatial import cKDTree

    identities = np.full(len(detections), np.nan)
    if truth.empty or detections.empty:
        return identities
    tree = cKDTree(truth[["centroid_y_nm", "centroid_x_nm"]].to_numpy())
    distance, index = tree.query(detections[["centroid_y_nm", "centroid_x_nm"]].to_numpy())
    inside = distance <= 0.5 * truth["equivalent_diameter_nm"].to_numpy()[index]
    identities[inside] = truth["particle_id"].to_numpy()[index[inside]]
    return identities


def _measured_table(movie: object, source: str) -> pd.DataFrame:
    """Per-frame particles of a synthetic movie measured on exact or threshold masks."""
    from antema_scale.particles import analyze_mask
    from antema_scale.segment import threshold_segment

    tables = []
    for frame, micrograph in enumerate(movie.micrographs):
        if source == "exact masks":
            mask = micrograph.mask
        else:
            mask = threshold_segment(micrograph.image, movie.pixel_size_nm).mask
        particles = analyze_mask(mask, movie.pixel_size_nm).particles
        particles.insert(0, "frame", frame)
        particles.insert(1, "time_s", frame * movie.frame_interval_s)
        particles["truth_id"] = _true_identities(
            particles, movie.tracks[movie.tracks["frame"] == frame]
        )
        tables.append(particles)
    return pd.concat(tables, ignore_index=True)


def synthetic_block(seeds: list[int], n_frames: int = 20) -> list[dict[str, object]]:
    """Tracking and events on synthetic movies (antema_scale.synth.generate_movie).

    256² px at 0.5 nm/px, ~8 nm particles at 15 % coverage, drift (0.6, 1.0) nm/frame,
    growth + Ostwald ripening + coalescence + nucleation. Three inputs per movie: the exact
    truth tables, particles measured on the exact masks, and on threshold-segmented frames.
    """
    from antema_scale.insitu import coalescence_scores, detect_events, drift_from_images
    from antema_scale.synth import SynthConfig
    from antema_scale.synth.movie import generate_movie

    rows = []
    for mode in ("hrtem", "haadf"):
        config = SynthConfig(
            mode=mode,
            image_size=256,
            pixel_size_nm=0.5,
            diameter_mean_nm=8.0,
            area_fraction=0.15,
            overlap="none",
        )
        for seed in seeds:
            movie = generate_movie(
                config,
                n_frames,
                seed=seed,
                drift_nm_per_frame=(0.6, 1.0),
                growth_nm_per_frame=0.02,
                appearance_rate=0.3,
            )
            truth = movie.tracks[~movie.tracks["touches_border"]].assign(
                truth_id=lambda t: t["particle_id"]
            )
            image_drift = drift_from_images(movie.frames, movie.pixel_size_nm).to_numpy()
            for source in ("truth tables", "exact masks", "threshold"):
                table = truth if source == "truth tables" else _measured_table(movie, source)
                tracks = track_particles(table, search_range_nm=4.0, memory=1)
                scores = tracking_scores(tracks)
                events = detect_events(tracks, search_range_nm=4.0)
                window = (-1, 1) if source == "truth tables" else (-10, 1)
                merges = coalescence_scores(
                    events, movie.events, tracks, frame_window=window, true_tracks=movie.tracks
                )
                link_drift = (
                    tracks.groupby("frame")[["drift_y_nm", "drift_x_nm"]].first().to_numpy()
                )
                row = {
                    "mode": mode,
                    "seed": seed,
                    "input": source,
                    "purity": scores["purity"],
                    "completeness": scores["completeness"],
                    "coalescence_precision": merges["precision"],
                    "coalescence_recall": merges["recall"],
                    "true_coalescences": merges["n_true"],
                    "true_coalescences_at_border_left_out": merges["n_at_border"],
                    "max_drift_error_links_nm": float(np.abs(link_drift - movie.drift_nm).max()),
                    "max_drift_error_images_nm": float(np.abs(image_drift - movie.drift_nm).max()),
                }
                rows.append(row)
                print(
                    f"synthetic {mode} seed {seed} {source:12s}: P {row['purity']:.4f} C {row['completeness']:.4f} "
                    f"coalescence P {row['coalescence_precision']:.2f} R {row['coalescence_recall']:.2f} "
                    f"(of {merges['n_true']:.0f}); drift error links {row['max_drift_error_links_nm']:.2f} nm, "
                    f"images {row['max_drift_error_images_nm']:.2f} nm",
                    flush=True,
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--synthetic-seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "bench_tracking.json"
    )
    args = parser.parse_args()
    # warm-up: imports and first-call costs stay out of the timings
    timed_tracking(
        movie_table(n_particles=20, n_frames=3, drift_nm=0.0, jitter_nm=0.5, seed=99),
        search_range_nm=4.0,
        correct_drift=True,
    )
    tracking = tracking_block(args.frames, args.seeds)
    growth = growth_block(args.frames, args.seeds)
    synthetic = synthetic_block(args.synthetic_seeds) if args.synthetic_seeds else []
    print(
        f"growth 0.5 nm/s over {growth['tracks']} tracks: median relative error "
        f"{growth['median_relative_error']:.4f}, {100 * growth['fraction_within_5_percent']:.1f} % within 5 %"
    )
    report = {
        "benchmark": "bench_tracking",
        "frames": args.frames,
        "seeds": args.seeds,
        "search_range_nm": 4.0,
        "memory": 1,
        "tracking": tracking,
        "growth": growth,
        "synthetic_movies": synthetic,
        "hardware": hardware_fingerprint(),
        "software": software_versions() | {"trackpy": _trackpy_version()},
        "git_revision": git_revision(Path(__file__).parent),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.output}")


def _trackpy_version() -> str:
    import trackpy

    return str(trackpy.__version__)


if __name__ == "__main__":
    main()
