"""Tests of the pure helpers of ``benchmarks/bench_memory.py`` (the benchmark itself is not run)."""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module."""
    return load_benchmark("bench_memory")


def _base(path: Path, seed: int, scale_nm: float = 0.5) -> Path:
    image = np.random.default_rng(seed).normal(100.0, 10.0, (40, 48)).astype(np.float32)
    with h5py.File(path, "w") as handle:
        data = handle.create_dataset("data", data=image)
        data.attrs["scale"] = scale_nm
        data.attrs["scale_unit"] = "nm"
    return path


def test_noisy_inputs_are_distinct_calibrated_copies_of_their_bases(
    bench: ModuleType, tmp_path: Path
) -> None:
    from antema_scale.io import read_micrograph

    bases = [_base(tmp_path / "a.h5", 1), _base(tmp_path / "b.h5", 2)]
    files = bench.write_noisy_inputs(tmp_path / "inputs", bases, 5, noise=0.05, seed=3)

    assert [path.name for path in files] == [f"input_{i:05d}.h5" for i in range(5)]
    digests = {hashlib.sha256(path.read_bytes()).hexdigest() for path in files}
    assert len(digests) == 5
    for index, path in enumerate(files):
        with h5py.File(bases[index % 2], "r") as handle:
            base = handle["data"][...]
        image = read_micrograph(path)
        assert image.attrs["pixel_size_nm"] == pytest.approx(0.5)
        assert image.shape == base.shape
        difference = np.asarray(image.values, dtype=np.float64) - base
        # noise of 0.05 x the base's std (~10): std ~0.5, mean ~0
        assert difference.std() == pytest.approx(0.05 * base.std(), rel=0.15)
        assert abs(difference.mean()) < 0.1


def test_noisy_inputs_are_reproducible_by_seed(bench: ModuleType, tmp_path: Path) -> None:
    bases = [_base(tmp_path / "a.h5", 1)]
    first = bench.write_noisy_inputs(tmp_path / "one", bases, 2, seed=7)
    second = bench.write_noisy_inputs(tmp_path / "two", bases, 2, seed=7)
    other = bench.write_noisy_inputs(tmp_path / "three", bases, 2, seed=8)
    read = [[h5py.File(p, "r")["data"][...] for p in run] for run in (first, second, other)]
    np.testing.assert_array_equal(read[0][1], read[1][1])
    assert not np.array_equal(read[0][1], read[2][1])


def test_noisy_inputs_need_a_base(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base"):
        bench.write_noisy_inputs(tmp_path, [], 3)


def test_milestone_counts(bench: ModuleType) -> None:
    assert bench.milestone_counts(2000) == {200: 0.1, 1000: 0.5, 2000: 1.0}
    assert bench.milestone_counts(15) == {2: 0.1, 8: 0.5, 15: 1.0}
    # tiny runs: every milestone is at least one image; shared counts keep the largest
    assert bench.milestone_counts(1) == {1: 1.0}


def _samples(bench: ModuleType, rss: list[tuple[int, float, float]]) -> list:
    return [
        bench.Sample(float(i), done, {"worker-0": w, "client": c}, 1.0)
        for i, (done, w, c) in enumerate(rss)
    ]


def test_slope_is_zero_when_flat_and_exact_when_linear(bench: ModuleType) -> None:
    done = list(range(0, 2001, 100))
    flat_worker = [400.0 + (5.0 if d % 200 else -5.0) for d in done]
    growing_client = [250.0 + 0.03 * d for d in done]  # 30 MiB per 1,000 images
    samples = _samples(bench, list(zip(done, flat_worker, growing_client, strict=True)))
    assert abs(bench.rss_slope_per_1000(samples, "worker-0")) < 5.0
    assert bench.rss_slope_per_1000(samples, "client") == pytest.approx(30.0)
    # only the second half counts: a fast rise at the start is not growth
    rising_then_flat = [100.0 + min(d, 500) for d in done]
    samples = _samples(bench, list(zip(done, rising_then_flat, growing_client, strict=True)))
    assert bench.rss_slope_per_1000(samples, "worker-0") == pytest.approx(0.0, abs=1e-9)


def test_slope_needs_enough_samples(bench: ModuleType) -> None:
    assert math.isnan(bench.rss_slope_per_1000([], "worker-0"))
    samples = _samples(bench, [(10, 1.0, 1.0), (10, 2.0, 1.0), (10, 3.0, 1.0)])
    assert math.isnan(bench.rss_slope_per_1000(samples, "worker-0"))
    assert math.isnan(bench.rss_slope_per_1000(samples, "missing"))


def test_samples_until_drops_the_merge_samples(bench: ModuleType) -> None:
    samples = _samples(bench, [(10, 1.0, 1.0), (20, 1.0, 1.0), (20, 1.0, 9.0), (20, 1.0, 9.0)])
    assert bench.samples_until(samples, samples[1]) == samples[:2]
    assert bench.samples_until(samples, None) == samples


def test_peaks_ignore_missing_processes(bench: ModuleType) -> None:
    samples = [
        bench.Sample(0.0, 0, {"worker-0": 300.0, "client": 200.0}, 1.0),
        bench.Sample(1.0, 5, {"client": 260.0}, 1.0),
        bench.Sample(2.0, 9, {"worker-0": 410.0, "client": 210.0}, 1.0),
    ]
    assert bench.peaks(samples) == {"worker-0": 410.0, "client": 260.0}


def test_downsample_keeps_ends_and_count(bench: ModuleType) -> None:
    samples = _samples(bench, [(i, float(i), 0.0) for i in range(1000)])
    kept = bench.downsample(samples, 50)
    assert len(kept) == 50
    assert kept[0] is samples[0] and kept[-1] is samples[-1]
    assert [s.done for s in kept] == sorted(s.done for s in kept)
    assert bench.downsample(samples[:10], 50) == samples[:10]


def test_sampler_sees_a_64_mib_block_come_and_go(bench: ModuleType) -> None:
    with bench.RssSampler({"me": os.getpid()}, interval=0.05) as sampler:
        sampler.done = 3
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB touched
        time.sleep(0.2)
        during = sampler.sample()
        del block
    assert len(sampler.samples) >= 3
    assert during.done == 3
    after = sampler.marks["after_run"]
    assert after is sampler.samples[-1]
    # the block is mmap-allocated: its 64 MiB are resident while it lives, returned on del
    assert during.rss_mib["me"] - after.rss_mib["me"] == pytest.approx(64.0, abs=8.0)
