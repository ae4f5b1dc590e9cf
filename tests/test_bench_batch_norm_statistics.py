"""Tests of ``benchmarks/batch_norm_statistics.py``: statistics re-estimated, weights kept."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from conftest import load_benchmark

from antema_scale.segment.augment import Augmentation, sample_batch
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.preprocess import Preprocessing
from antema_scale.segment.train import TrainConfig, _prepared_split, _source_weights


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("batch_norm_statistics")


def test_cached_split_reads_what_a_training_run_cached(bench: ModuleType, tmp_path: Path) -> None:
    config = TrainConfig(
        output_dir=str(tmp_path),
        synthetic_images=10,
        synthetic_generator="standin",
        synthetic_shape=(96, 96),
    )
    pre = Preprocessing((0.125, 0.5), 1.0)
    prepared = _prepared_split(config, "train", pre, tmp_path)
    cached = bench.cached_split(tmp_path, "train")
    assert [p.image_id for p in cached] == [p.image_id for p in prepared]
    np.testing.assert_array_equal(cached[0].image, prepared[0].image)
    np.testing.assert_array_equal(cached[0].mask, prepared[0].mask)
    with pytest.raises(FileNotFoundError, match="expected one data-val"):
        bench.cached_split(tmp_path, "val")


def test_recalibration_averages_the_batches_and_keeps_the_weights(
    bench: ModuleType, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(base_width=4))
    weights_before = network.encoder.stem[0].weight.clone()
    config = TrainConfig(
        output_dir=str(tmp_path),
        synthetic_images=10,
        synthetic_generator="standin",
        synthetic_shape=(96, 96),
    )
    images = _prepared_split(config, "train", Preprocessing((0.125, 0.5), 1.0), tmp_path)
    aug = Augmentation(tile=64)
    bench.recalibrate_batch_norm(network, images, 3, augmentation=aug, batch_size=2, seed=5)
    # the same batches again: the first batch norm sees the stem convolution's output
    rng = np.random.default_rng(5)
    means = []
    with torch.no_grad():
        for _ in range(3):
            x, _ = sample_batch(images, 2, aug, rng, _source_weights(images))
            means.append(network.encoder.stem[0](x).mean(dim=(0, 2, 3)))
    norm = network.encoder.stem[1]
    torch.testing.assert_close(norm.running_mean, torch.stack(means).mean(0), rtol=1e-4, atol=1e-5)
    assert norm.momentum == 0.1 and not network.training
    torch.testing.assert_close(network.encoder.stem[0].weight, weights_before, atol=0, rtol=0)
