"""Training: loss goes down, runs write checkpoints, resume continues, splits are fixed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from antema_scale.segment.augment import (
    Augmentation,
    PreparedImage,
    batch_views,
    draw_images,
    sample_batch,
    smooth_background,
)
from antema_scale.segment.datasets import split_ids, standin_micrograph
from antema_scale.segment.model_file import load_model, save_model
from antema_scale.segment.network import NetworkConfig, build_network
from antema_scale.segment.preprocess import Preprocessing
from antema_scale.segment.train import (
    TrainConfig,
    anchor_loss,
    anchor_network,
    anchored_images,
    batch_loss,
    ema_decay_at,
    freeze_batch_norm,
    gap_loss,
    gap_map,
    hard_example_weights,
    image_difficulty,
    initialise_from,
    lovasz_hinge,
    outline_map,
    prepare_labelled,
    segmentation_loss,
    train,
    training_autocast_dtype,
    weight_average,
)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_few_steps_reduce_the_loss(precision: str) -> None:
    """Also with the forward pass in bfloat16 (``train --precision bf16``)."""
    torch.manual_seed(0)
    pre = Preprocessing((0.2, 0.8), 1.0)
    items = [prepare_labelled(standin_micrograph(s, (96, 96)), pre) for s in range(4)]
    aug = Augmentation(tile=64, scale=(1.0, 1.0), rotate=False, flip=False, noise=0.0)
    images, masks = sample_batch(items, 8, aug, np.random.default_rng(0))
    net = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4)))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    dtype = training_autocast_dtype("cpu", precision)
    losses = []
    for _ in range(25):
        with (
            warnings.catch_warnings(),
            torch.autocast("cpu", dtype=dtype, enabled=dtype is not None),
        ):
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on older CPUs
            logits = net(images)
        assert logits.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        loss = segmentation_loss(logits.float(), masks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in net.parameters())  # weights stay float32
    assert losses[-1] < 0.7 * losses[0]


def test_augmented_batch_shapes_and_mask_values() -> None:
    image = np.random.default_rng(0).normal(size=(50, 70)).astype(np.float32)
    mask = np.zeros((50, 70), dtype=bool)
    mask[10:30, 20:40] = True
    prepared = [PreparedImage(image, mask, "a", "test")]
    x, y = sample_batch(
        prepared, 3, Augmentation(tile=32, whole_image=0.5), np.random.default_rng(1)
    )
    assert x.shape == y.shape == (3, 1, 32, 32)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}


def _identity_augmentation(**changes: Any) -> Augmentation:
    """Augmentation that changes nothing, except ``changes``."""
    fixed = dict(
        scale=(1.0, 1.0),
        rotate=False,
        flip=False,
        whole_image=0.0,
        contrast=(1.0, 1.0),
        brightness=0.0,
        noise=0.0,
        invert=0.0,
    )
    return Augmentation(**{**fixed, **changes})


def test_identity_augmentation_reproduces_the_crop() -> None:
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    mask = image > 2000
    aug = _identity_augmentation(tile=64)
    x, y = sample_batch([PreparedImage(image, mask, "a", "t")], 1, aug, np.random.default_rng(0))
    np.testing.assert_allclose(x[0, 0].numpy(), image, atol=1e-2)
    np.testing.assert_array_equal(y[0, 0].numpy() > 0.5, mask)


def test_smooth_background_has_the_amplitude_and_no_edges() -> None:
    rng = np.random.default_rng(4)
    for amplitude in (0.3, 1.0):
        field = smooth_background(128, amplitude, rng)[0].numpy()
        assert field.shape == (128, 128)
        assert abs(np.abs(field).max() - amplitude) < 1e-5
        # Broad: no step between neighbouring pixels exceeds a few % of the amplitude.
        steps = max(np.abs(np.diff(field, axis=0)).max(), np.abs(np.diff(field, axis=1)).max())
        assert steps < 0.1 * amplitude


def test_shading_adds_a_smooth_field_to_half_of_the_tiles() -> None:
    image = np.zeros((64, 64), dtype=np.float32)
    mask = np.zeros((64, 64), dtype=bool)
    aug = _identity_augmentation(tile=64, shading=0.8)
    x, y = sample_batch([PreparedImage(image, mask, "a", "t")], 40, aug, np.random.default_rng(2))
    peaks = x.abs().amax(dim=(1, 2, 3)).numpy()
    shaded = peaks > 1e-6
    assert 10 <= shaded.sum() <= 30  # about half
    assert peaks.max() <= 0.8 + 1e-5
    assert not y.any()  # the mask is untouched


def test_split_is_seeded_disjoint_and_60_20_20() -> None:
    ids = [f"img{i:03d}" for i in range(50)]
    a, b = split_ids(ids, seed=3), split_ids(list(reversed(ids)), seed=3)
    assert a == b
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (30, 10, 10)
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(ids)
    assert not set(a["train"]) & set(a["test"])
    assert split_ids(ids, seed=4) != a
    with pytest.raises(ValueError, match="sum to 1"):
        split_ids(ids, fractions=(0.5, 0.2, 0.2))


def _tiny_config(output_dir: Path, steps_per_epoch: int) -> TrainConfig:
    """One epoch of a width-4 network on 10 stand-in images of 96² px, on the CPU."""
    return TrainConfig(
        output_dir=str(output_dir),
        synthetic_images=10,
        synthetic_generator="standin",
        synthetic_shape=(96, 96),
        base_width=4,
        epochs=1,
        steps_per_epoch=steps_per_epoch,
        batch_size=2,
        augmentation=Augmentation(tile=64),
        threads=1,
        device="cpu",
    )


def test_train_writes_checkpoints_and_resumes(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "run", steps_per_epoch=3)
    first = train(config)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "state.pt", "summary.json"}
    assert first["epochs"] == 1
    config.epochs = 2
    second = train(config, resume=True)
    assert [h["epoch"] for h in second["history"]] == [1, 2]
    model = load_model(run / "last.pt", device="cpu")
    assert model.metadata["training"]["epochs_done"] == 2
    assert model.metadata["data_seen"]["train"]["images"] == {"standin": 6}
    assert "standin" in model.metadata["validation"]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def test_data_progress_reports_every_prepared_image_once(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "run", steps_per_epoch=1)
    calls: list[tuple[str, int, int]] = []
    train(config, data_progress=lambda *call: calls.append(call))
    # 10 stand-ins split 60/20/20: 6 train, 2 val; a call before the first image
    assert calls == [("train", i, 6) for i in range(7)] + [("val", i, 2) for i in range(3)]
    calls.clear()
    train(config, data_progress=lambda *call: calls.append(call))
    assert calls == []  # both splits come from the run folder's cache now


def test_split_size_counts_what_iter_split_yields(tmp_path: Path) -> None:
    import dataclasses

    from PIL import Image

    from antema_scale.segment.train import iter_split, split_size

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i in range(7):
        Image.fromarray(np.full((32, 32), 40 * (i % 5), np.uint8)).save(images / f"im{i}.png")
        Image.fromarray(np.eye(32, dtype=np.uint8)).save(masks / f"im{i}.png")
    base = TrainConfig(
        folders=[(str(images), str(masks), 0.3)],
        synthetic_images=5,
        synthetic_generator="standin",
        synthetic_shape=(64, 64),
    )
    for config in (base, dataclasses.replace(base, raft_validation_images=1)):
        for split in ("train", "val", "test"):
            items = list(iter_split(config, split))
            assert split_size(config, split) == len(items) > 0
        assert (
            split_size(config, "train", limit=1) == len(list(iter_split(config, "train", 1))) == 2
        )
    with pytest.raises(ValueError, match="split must be one of"):
        split_size(base, "holdout")


def test_parallel_data_preparation_gives_the_serial_result() -> None:
    from antema_scale.segment.train import prepare_loaded, split_loaders

    config = TrainConfig(synthetic_images=10, synthetic_shape=(96, 96), raft_validation_images=1)
    loaders = split_loaders(config, "val")  # 2 synthetic scenes + 1 raft
    pre = Preprocessing((0.125, 0.5), 1.0)
    serial = list(prepare_loaded(loaders, pre, workers=1))
    parallel = list(prepare_loaded(loaders, pre, workers=2))
    assert [p.image_id for p in serial] == [
        f"synth-{mode}-low-{2_000_000 + i}" for i, mode in enumerate(("hrtem", "haadf"))
    ] + ["raft-4000000"]
    for a, b in zip(serial, parallel, strict=True):
        assert (a.image_id, a.source) == (b.image_id, b.source)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
    # one loader per image, cycling mode then overlap as synthetic_images does
    train_ids = [load().image_id for load in split_loaders(config, "train")[:5]]
    assert [i.rsplit("-", 1)[0] for i in train_ids] == [
        "synth-hrtem-low",
        "synth-haadf-low",
        "synth-hrtem-medium",
        "synth-haadf-medium",
        "synth-hrtem-low",
    ]


def test_train_without_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training images"):
        train(TrainConfig(output_dir=str(tmp_path), threads=1))


def test_gap_map_marks_only_the_narrow_gap_between_particles() -> None:
    target = torch.zeros(1, 1, 24, 24)
    target[0, 0, 5:15, 0:8] = 1.0  # touches the left edge: no gap to the edge
    target[0, 0, 5:15, 10:16] = 1.0  # 2 px gap to the first particle
    target[0, 0, 5:15, 22:24] = 1.0  # 6 px gap: wider than the kernel reaches
    gaps = gap_map(target, 5)
    rows, cols = np.nonzero(gaps[0, 0].numpy())
    assert set(cols) == {8, 9} and set(rows) == set(range(5, 15))
    assert gap_map(target, 1).sum() == 0


def test_gap_weight_raises_the_loss_of_filled_gaps_only() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4:12, 2:7] = 1.0
    target[0, 0, 4:12, 9:14] = 1.0
    good = torch.where(target > 0, 6.0, -6.0)
    filled = good.clone()
    filled[0, 0, 4:12, 7:9] = 6.0  # the gap predicted as particle: the two merge
    assert segmentation_loss(good, target, 4.0) < 0.02  # a right answer stays cheap
    plain = segmentation_loss(filled, target, 0.0) - segmentation_loss(good, target, 0.0)
    weighted = segmentation_loss(filled, target, 4.0) - segmentation_loss(good, target, 4.0)
    assert weighted > 2.0 * plain


def test_gap_loss_rewards_finding_the_gap_and_only_the_gap() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4:12, 2:7] = 1.0
    target[0, 0, 4:12, 9:14] = 1.0  # 2 px gap at columns 7-8
    gaps = gap_map(target, 5)
    right = torch.where(gaps > 0, 6.0, -6.0)
    none = torch.full_like(target, -6.0)
    everywhere = torch.where(target > 0, 6.0, right)  # the particles called gaps too
    assert gap_loss(right, target, 5) < 0.05
    assert gap_loss(none, target, 5) > 0.5  # Dice: missing the rare gap pixels costs
    assert gap_loss(everywhere, target, 5) > gap_loss(right, target, 5) + 0.5


def test_outline_map_marks_both_sides_of_edges_but_not_the_image_border() -> None:
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 3:7, 3:7] = 1.0  # a 4x4 square inside
    target[0, 0, 8:, :3] = 1.0  # a block on the bottom-left border
    band = outline_map(target)[0, 0].numpy().astype(bool)
    square = np.zeros((10, 10), dtype=bool)
    square[2:8, 2:8] = True
    square[4:6, 4:6] = False  # the 2x2 core of the square is not next to an edge
    assert band[:7].tolist() == square[:7].tolist()
    assert not band[9, 0] and not band[9, 1]  # the bottom and left borders are not edges
    assert band[9, 2] and band[9, 3] and band[7, 0]  # its right and top edges are


def test_outline_weight_raises_the_loss_of_wrong_outlines_only() -> None:
    target = torch.zeros(1, 1, 16, 16)
    target[0, 0, 4:12, 4:12] = 1.0
    good = torch.where(target > 0, 6.0, -6.0)
    shrunk = good.clone()
    shrunk[0, 0, 4, 4:12] = -6.0  # one outline row missed
    assert segmentation_loss(good, target, outline_weight=2.0) < 0.02
    plain = segmentation_loss(shrunk, target) - segmentation_loss(good, target)
    weighted = segmentation_loss(shrunk, target, outline_weight=2.0) - segmentation_loss(
        good, target, outline_weight=2.0
    )
    assert weighted > 1.5 * plain


def test_lovasz_hinge_is_the_jaccard_loss_at_hard_predictions() -> None:
    """At logits of +-1 a wrong pixel has hinge error 2, a right one 0: the loss is 2 (1 - IoU)."""
    rng = np.random.default_rng(5)
    target = torch.from_numpy(rng.random((2, 1, 20, 20)) < 0.3).float()
    predicted = target.clone()
    flip = torch.from_numpy(rng.random((2, 1, 20, 20)) < 0.1)
    predicted[flip] = 1.0 - predicted[flip]  # some false positives and false negatives
    tp = float((predicted * target).sum())
    fp = float((predicted * (1 - target)).sum())
    fn = float(((1 - predicted) * target).sum())
    assert fp > 0 and fn > 0
    loss = lovasz_hinge(2.0 * predicted - 1.0, target)
    assert loss.item() == pytest.approx(2.0 * (1.0 - tp / (tp + fp + fn)), rel=1e-6)
    assert lovasz_hinge(torch.zeros_like(target), target).item() == pytest.approx(1.0)
    assert lovasz_hinge(6.0 * (2.0 * target - 1.0), target).item() == 0.0  # confident, right


def test_lovasz_loss_has_gradients_and_bad_overlap_names_are_refused() -> None:
    logits = torch.randn(1, 1, 12, 12, requires_grad=True)
    target = (torch.rand(1, 1, 12, 12) > 0.5).float()
    segmentation_loss(logits, target, 4.0, overlap="lovasz").backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="overlap must be 'dice' or 'lovasz'"):
        segmentation_loss(logits, target, overlap="iou")


def test_initialise_from_copies_weights_and_checks_compatibility(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4)))
    preprocessing = Preprocessing((0.2, 0.8), sigma_px=1.0)
    path = tmp_path / "source.pt"
    save_model(path, source, preprocessing, {"training": {"command": "antema-scale train x"}})
    torch.manual_seed(4)
    fresh = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4)))
    info = initialise_from(fresh, str(path), preprocessing)
    assert info["command"] == "antema-scale train x"
    assert info["weights_sha256"] == load_model(path, device="cpu").metadata["weights_sha256"]
    for name, tensor in source.state_dict().items():
        # save_model stores fp16: the copy equals the source up to that rounding
        torch.testing.assert_close(fresh.state_dict()[name], tensor, atol=1e-2, rtol=1e-3)
    # a wider run grows the model (tests/test_segment_widen.py); a narrower one is refused
    wider = build_network(NetworkConfig(base_width=8, aspp_rates=(2, 4)))
    assert initialise_from(wider, str(path), preprocessing)["widened_from_base_width"] == 4
    torch.testing.assert_close(
        wider.encoder.stem[0].weight[:4], source.encoder.stem[0].weight, atol=1e-2, rtol=1e-3
    )
    save_model(tmp_path / "wider.pt", wider, preprocessing, {})
    with pytest.raises(ValueError, match="--width at least the model's"):
        initialise_from(fresh, str(tmp_path / "wider.pt"), preprocessing)
    with pytest.raises(ValueError, match="--pixel-min"):
        initialise_from(fresh, str(path), Preprocessing((0.1, 0.4), sigma_px=1.0))
    # a network may gain the detail refinement: the old weights, the refinement at zero
    detailed = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4), detail_channels=3))
    initialise_from(detailed, str(path), preprocessing)
    assert detailed.detail is not None
    assert float(detailed.detail.delta.weight.detach().abs().sum()) == 0.0
    torch.testing.assert_close(
        detailed.encoder.stem[0].weight, source.encoder.stem[0].weight, atol=1e-2, rtol=1e-3
    )
    # the output stride may change: same weights, denser deep features
    dense = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4), output_stride=8))
    initialise_from(dense, str(path), preprocessing)
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(dense.state_dict()[name], tensor, atol=1e-2, rtol=1e-3)
    # ... or gain the gap channel (which starts predicting no gaps), but not lose it
    gapped = build_network(NetworkConfig(base_width=4, aspp_rates=(2, 4), gap_channel=True))
    initialise_from(gapped, str(path), preprocessing)
    assert gapped.gap_head is not None and float(gapped.gap_head.weight.detach().abs().sum()) == 0.0
    save_model(tmp_path / "gapped.pt", gapped, preprocessing, {})
    with pytest.raises(ValueError, match="gap channel may gain one"):
        initialise_from(fresh, str(tmp_path / "gapped.pt"), preprocessing)
    # ... but not lose the refinement, nor change its width
    save_model(tmp_path / "detailed.pt", detailed, preprocessing, {})
    for channels in (0, 5):
        target = build_network(
            NetworkConfig(base_width=4, aspp_rates=(2, 4), detail_channels=channels)
        )
        with pytest.raises(ValueError, match="--detail-channels"):
            initialise_from(target, str(tmp_path / "detailed.pt"), preprocessing)


def test_fine_tuning_run_starts_from_the_given_model(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "base", steps_per_epoch=2)
    train(config)
    base = tmp_path / "base" / "last.pt"
    config.output_dir = str(tmp_path / "tuned")
    config.init_model = str(base)
    config.learning_rate = 0.0  # no update: the tuned network must equal its start
    train(config)
    start = load_model(base, device="cpu").network.state_dict()
    tuned = load_model(tmp_path / "tuned" / "last.pt", device="cpu")
    for name, tensor in tuned.network.state_dict().items():
        if tensor.is_floating_point() and "running" not in name:
            torch.testing.assert_close(tensor, start[name], atol=1e-3, rtol=1e-3)
    assert tuned.metadata["data_seen"]["initialised_from"]["path"] == str(base)


def test_annotations_change_only_the_training_split_and_nothing_else() -> None:
    import dataclasses

    from antema_scale.segment.datasets import sample_synth_config
    from antema_scale.segment.train import TrainConfig, load_split

    plain = sample_synth_config(1_000_005, mode="hrtem", overlap="low")
    marked = sample_synth_config(1_000_005, mode="hrtem", overlap="low", annotations=1.0)
    assert not plain.annotations and marked.annotations  # type: ignore[attr-defined]
    assert dataclasses.replace(marked, annotations=False) == plain  # type: ignore[type-var]
    share = np.mean(
        [
            sample_synth_config(s, mode="haadf", overlap="low", annotations=0.25).annotations
            for s in range(400)
        ]  # type: ignore[attr-defined]
    )
    assert 0.18 < share < 0.32

    base = TrainConfig(synthetic_images=5, synthetic_shape=(128, 128), max_images_per_source=1)
    annotated = dataclasses.replace(base, synthetic_annotations=1.0)
    (train_plain,), (train_marked,) = load_split(base, "train"), load_split(annotated, "train")
    (val_plain,), (val_marked,) = load_split(base, "val"), load_split(annotated, "val")
    assert not np.array_equal(train_plain.image, train_marked.image)  # a scale bar burned in
    np.testing.assert_array_equal(train_plain.mask, train_marked.mask)  # never a particle
    np.testing.assert_array_equal(val_plain.image, val_marked.image)  # val/test untouched


def test_raft_validation_scenes_join_only_the_validation_split() -> None:
    import dataclasses

    from antema_scale.segment.datasets import dense_raft_images
    from antema_scale.segment.preprocess import Preprocessing
    from antema_scale.segment.train import TrainConfig, _data_key, load_split

    (first,) = dense_raft_images([4_000_000], shape=(128, 128))
    (again,) = dense_raft_images([4_000_000], shape=(128, 128))
    assert first.source == "rafts" and first.image_id == "raft-4000000"
    np.testing.assert_array_equal(first.image, again.image)  # seeded
    assert 0.2 < first.mask.mean() < 0.7  # a close-packed film

    base = TrainConfig(synthetic_images=5, synthetic_shape=(128, 128), max_images_per_source=1)
    rafts = dataclasses.replace(base, raft_validation_images=2)
    assert [i.source for i in load_split(rafts, "val")] == ["synth", "rafts", "rafts"]
    for split in ("train", "test"):
        assert [i.source for i in load_split(rafts, split)] == ["synth"]
    pre = Preprocessing((0.125, 0.5), 1.0)
    assert _data_key(base, "val", pre) != _data_key(rafts, "val", pre)
    assert _data_key(base, "train", pre) == _data_key(rafts, "train", pre)  # caches stay valid


@pytest.mark.parametrize(
    ("field", "first_id"),
    [("raft_training_images", "raft-5000000"), ("sparse_training_images", "sparse-5500000")],
)
def test_extra_training_scenes_join_the_synthetic_training_images(
    field: str, first_id: str
) -> None:
    import dataclasses

    from antema_scale.segment.preprocess import Preprocessing
    from antema_scale.segment.train import TrainConfig, _data_key, load_split

    base = TrainConfig(synthetic_images=5, synthetic_shape=(128, 128), max_images_per_source=1)
    extra = dataclasses.replace(base, **{field: 2})
    train_items = load_split(extra, "train")
    assert [i.source for i in train_items] == ["synth"] * 3  # one pool: sampled by area
    prefix, seed = first_id.rsplit("-", 1)
    assert [i.image_id for i in train_items[1:]] == [first_id, f"{prefix}-{int(seed) + 1}"]
    for split in ("val", "test"):
        assert [i.image_id for i in load_split(extra, split)] == [
            i.image_id for i in load_split(base, split)
        ]
    pre = Preprocessing((0.125, 0.5), 1.0)
    assert _data_key(base, "train", pre) != _data_key(extra, "train", pre)
    assert _data_key(base, "val", pre) == _data_key(extra, "val", pre)
    with pytest.raises(ValueError, match=f"{field} must be >= 0, got -1"):
        train(dataclasses.replace(base, **{field: -1}))


def test_raft_scenes_are_close_packed_and_sparse_scenes_mostly_empty() -> None:
    from antema_scale.segment.datasets import dense_raft_micrograph, sparse_micrograph
    from antema_scale.segment.train import (
        RAFT_TRAIN_SEED_BASE,
        SPARSE_TRAIN_SEED_BASE,
        SYNTH_SEED_BASE,
    )

    assert max(SYNTH_SEED_BASE.values()) < RAFT_TRAIN_SEED_BASE
    assert RAFT_TRAIN_SEED_BASE + 100_000 < SPARSE_TRAIN_SEED_BASE < 6_000_000
    rafts = [dense_raft_micrograph(RAFT_TRAIN_SEED_BASE + k, (128, 128)) for k in range(2)]
    assert all(0.2 < np.asarray(r.mask).mean() < 0.7 for r in rafts)  # close-packed films
    scenes = [sparse_micrograph(SPARSE_TRAIN_SEED_BASE + k) for k in range(4)]
    assert [s.config.mode for s in scenes] == ["hrtem", "haadf"] * 2
    for scene in scenes:
        assert 0.001 < np.asarray(scene.mask).mean() < 0.05  # mostly empty support
        assert 0.1 <= scene.config.gradient <= 0.4


def test_training_precision_choices_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from antema_scale.segment import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert training_autocast_dtype("cpu", "auto") is None
    assert training_autocast_dtype("cpu", "fp32") is None
    assert training_autocast_dtype("cpu", "bf16") is torch.bfloat16
    assert training_autocast_dtype("cuda", "fp32") is None
    with pytest.raises(ValueError, match="float16 training would need loss scaling"):
        training_autocast_dtype("cpu", "fp16")


@pytest.mark.parametrize(
    ("option", "value", "bad", "message"),
    [
        ("precision", "bf16", "fp16", "training precision must be one of auto, fp32, bf16"),
        ("loss", "bce-lovasz", "focal", "loss must be one of bce-dice, bce-lovasz"),
        ("output_stride", 8, 4, "output_stride must be one of"),
        ("gap_channel", True, None, None),
        ("hard_examples", 2.0, -1.0, "hard_examples must be >= 0"),
        ("ema_decay", 0.9, 1.0, r"ema_decay must be in \[0, 1\)"),
    ],
)
def test_training_run_records_its_option_and_refuses_bad_values(
    tmp_path: Path, option: str, value: str | int, bad: str | int | None, message: str | None
) -> None:
    """A bf16 forward pass, the Lovász loss, output stride 8 or the gap channel trains and
    lands in the metadata; typos are refused."""
    config = _tiny_config(tmp_path / "run", steps_per_epoch=2)
    setattr(config, option, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on older CPUs
        summary = train(config)
    assert np.isfinite(summary["history"][0]["loss"])
    model = load_model(tmp_path / "run" / "last.pt", device="cpu")
    assert model.metadata["training"][option] == value
    if bad is None:
        return
    setattr(config, option, bad)
    with pytest.raises(ValueError, match=message):
        train(config)


def _prepared(source: str, mask: np.ndarray) -> PreparedImage:
    return PreparedImage(np.zeros(mask.shape, np.float32), mask, "x", source)


def test_image_difficulty_is_one_minus_the_particle_iou() -> None:
    truth = np.zeros((10, 10), bool)
    truth[2:6, 2:6] = True  # 16 px
    half = np.zeros((10, 10))
    half[2:6, 2:4] = 0.9  # 8 of 16 found, nothing false: IoU 0.5
    wide = np.zeros((10, 10))
    wide[2:8, 2:6] = 0.9  # 16 found + 8 false: IoU 16/24
    empty = np.zeros((10, 10), bool)
    images = [_prepared("a", truth)] * 3 + [_prepared("a", empty)] * 2
    probs = [truth.astype(float), half, wide, np.zeros((10, 10)), half]
    np.testing.assert_allclose(image_difficulty(images, probs), [0.0, 0.5, 1 - 16 / 24, 0.0, 1.0])


def test_hard_example_weights_favour_hard_images_and_keep_sources_balanced() -> None:
    mask = np.zeros((4, 4), bool)
    images = [_prepared("synth", mask)] * 3 + [_prepared("emps", mask)] * 2
    base = np.array([0.2, 0.2, 0.1, 0.25, 0.25])  # each source holds half
    difficulty = np.array([0.0, 0.1, 0.2, 0.3, 0.3])
    np.testing.assert_array_equal(hard_example_weights(images, base, difficulty, 0.0), base)
    weights = hard_example_weights(images, base, difficulty, 2.0)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[:3].sum() == pytest.approx(0.5) and weights[3:].sum() == pytest.approx(0.5)
    # synth: mean difficulty 0.1 -> factors 1, 3, 5 on the base weights 0.2, 0.2, 0.1
    np.testing.assert_allclose(weights[:3], 0.5 * np.array([0.2, 0.6, 0.5]) / 1.3)
    np.testing.assert_allclose(weights[3:], [0.25, 0.25])  # equally hard: unchanged
    with pytest.raises(ValueError, match="strength must be >= 0"):
        hard_example_weights(images, base, difficulty, -1.0)


def test_hard_examples_are_measured_once_and_kept_for_a_resumed_run(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "run", steps_per_epoch=2)
    config.hard_examples = 2.0
    calls: list[tuple[str, int, int]] = []
    train(config, data_progress=lambda *call: calls.append(call))
    measured = [call for call in calls if call[0] == "difficulty"]
    assert measured[0] == ("difficulty", 0, 6) and measured[-1] == ("difficulty", 6, 6)
    difficulty = np.load(tmp_path / "run" / "difficulty.npy")
    assert difficulty.shape == (6,) and np.all((difficulty >= 0) & (difficulty <= 1))
    model = load_model(tmp_path / "run" / "last.pt", device="cpu")
    recorded = model.metadata["data_seen"]["hard_examples"]
    assert recorded["strength"] == 2.0
    assert recorded["mean_difficulty"]["standin"] == pytest.approx(difficulty.mean())
    np.save(tmp_path / "run" / "difficulty.npy", np.full(6, 0.25))  # as if measured before
    config.epochs = 2
    calls.clear()
    train(config, resume=True, data_progress=lambda *call: calls.append(call))
    assert not [call for call in calls if call[0] == "difficulty"]  # not measured again
    model = load_model(tmp_path / "run" / "last.pt", device="cpu")
    assert model.metadata["data_seen"]["hard_examples"]["mean_difficulty"]["standin"] == 0.25
    train(config)  # a fresh run in the same folder measures its own start, ignoring the file
    assert not np.allclose(np.load(tmp_path / "run" / "difficulty.npy"), 0.25)


def test_fine_tuning_an_ensemble_trains_the_whole_ensemble(tmp_path: Path) -> None:
    from antema_scale.segment.model_file import combine_models
    from antema_scale.segment.network import NetworkEnsemble

    config = _tiny_config(tmp_path / "base", steps_per_epoch=2)
    train(config)
    base = tmp_path / "base" / "last.pt"
    combine_models([base, base], tmp_path / "ensemble.pt", half=False)
    config.output_dir = str(tmp_path / "tuned")
    config.init_model = str(tmp_path / "ensemble.pt")
    config.learning_rate = 0.0  # no update: the tuned ensemble must equal its start
    train(config)
    tuned = load_model(tmp_path / "tuned" / "last.pt", device="cpu")
    assert isinstance(tuned.network, NetworkEnsemble) and len(tuned.network.members) == 2
    start = load_model(base, device="cpu").network.state_dict()
    for member in tuned.network.members:
        for name, tensor in member.state_dict().items():
            if tensor.is_floating_point() and "running" not in name:
                torch.testing.assert_close(tensor, start[name], atol=1e-3, rtol=1e-3)
    command = tuned.metadata["data_seen"]["initialised_from"]["command"]
    assert isinstance(command, list) and len(command) == 2
    config.output_dir = str(tmp_path / "wider")
    config.base_width = 8  # an ensemble is not widened
    with pytest.raises(ValueError, match="an ensemble fine-tunes only as the same ensemble"):
        train(config)


def test_ema_decay_forgets_the_start_quickly_then_keeps_the_decay() -> None:
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 90) == pytest.approx(0.91)
    assert ema_decay_at(0.999, 100_000) == 0.999


def test_weight_average_is_the_moving_average_of_weights_and_statistics() -> None:
    network = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    averaged = weight_average(network, decay=0.5)
    expected_weight = None
    for step, value in enumerate([1.0, 3.0, -2.0, 5.0]):
        with torch.no_grad():
            network[0].weight.fill_(value)
            network[1].running_mean.fill_(10 * value)
        averaged.update_parameters(network)
        d = ema_decay_at(0.5, step)  # 0.1, 0.18..., 0.25, 0.3...: the first update copies
        expected_weight = value if step == 0 else d * expected_weight + (1 - d) * value
    assert expected_weight is not None
    torch.testing.assert_close(averaged.module[0].weight, torch.full((1, 2), expected_weight))
    torch.testing.assert_close(
        averaged.module[1].running_mean, torch.full((1,), 10 * expected_weight)
    )
    assert network[0].weight[0, 0].item() == 5.0  # the trained network is left alone


def test_training_with_ema_saves_the_average_and_resumes_it(tmp_path: Path) -> None:
    whole = _tiny_config(tmp_path / "whole", steps_per_epoch=3)
    whole.ema_decay, whole.epochs = 0.9, 2
    train(whole)
    parts = _tiny_config(tmp_path / "parts", steps_per_epoch=3)
    parts.ema_decay = 0.9
    train(parts)
    parts.epochs = 2
    train(parts, resume=True)
    state = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    saved = load_model(tmp_path / "whole" / "last.pt", device="cpu")
    resumed = load_model(tmp_path / "parts" / "last.pt", device="cpu")
    assert saved.metadata["training"]["ema_decay"] == 0.9
    assert int(state["averaged"]["n_averaged"]) == 6
    for name, value in saved.network.state_dict().items():
        if not name.endswith("num_batches_tracked"):  # saved weights are the average ...
            torch.testing.assert_close(
                value.float(), state["averaged"][f"module.{name}"].float(), atol=1e-3, rtol=1e-3
            )
        torch.testing.assert_close(value, resumed.network.state_dict()[name])  # ... resumed too
    stem = "encoder.stem.0.weight"
    assert not torch.allclose(state["averaged"][f"module.{stem}"], state["network"][stem])


def test_draw_images_and_batch_views_are_sample_batch_in_two_steps() -> None:
    items = [
        PreparedImage(
            np.random.default_rng(k).random((80, 80), np.float32), np.eye(80) > 0, str(k), "t"
        )
        for k in range(3)
    ]
    aug = Augmentation(tile=32)
    x, y = sample_batch(items, 5, aug, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    picks = draw_images(items, 5, rng)
    x2, y2 = batch_views(items, picks, aug, rng)
    assert picks.shape == (5,) and set(picks) <= {0, 1, 2}
    torch.testing.assert_close(x, x2, atol=0, rtol=0)
    torch.testing.assert_close(y, y2, atol=0, rtol=0)


def test_anchored_images_are_all_but_the_added_scenes() -> None:
    mask = np.zeros((4, 4), bool)
    ids = ["synth-1000000", "sparse-5500000", "raft-5000000", "0113230c21", "raft_like"]
    images = [PreparedImage(np.zeros((4, 4), np.float32), mask, i, "synth") for i in ids]
    assert anchored_images(images).tolist() == [True, False, False, True, True]


def test_anchor_network_starts_equal_and_never_updates_its_statistics() -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(base_width=4)).train()
    for module in network.modules():  # compare without the randomness of dropout
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    anchor = anchor_network(network)
    before = {k: v.clone() for k, v in anchor.state_dict().items()}
    x = torch.randn(2, 1, 64, 64) * 3 + 1
    torch.testing.assert_close(anchor(x), network(x))
    for name, tensor in anchor.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, before[name], atol=0, rtol=0)
    assert not any(p.requires_grad for p in anchor.parameters())
    # the network's own running statistics did move on the same batches
    assert not torch.equal(
        network.state_dict()["encoder.stem.1.running_mean"], before["encoder.stem.1.running_mean"]
    )


def test_anchor_loss_pulls_back_only_where_the_logits_moved() -> None:
    start = torch.tensor([[-3.0, 0.5, 4.0]])
    logits = start.clone().requires_grad_(True)
    anchor_loss(logits, start).backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(start))
    moved = torch.tensor([[-3.0, 2.5, 4.0]], requires_grad=True)
    anchor_loss(moved, start).backward()
    assert moved.grad[0, 1] > 0 and moved.grad[0, 0] == 0 and moved.grad[0, 2] == 0


def test_batch_loss_learns_labels_of_added_scenes_and_holds_the_rest() -> None:
    torch.manual_seed(1)
    config = TrainConfig(gap_weight=4.0, anchor_weight=2.0)
    target = (torch.rand(4, 1, 16, 16) > 0.6).float()
    logits = torch.randn(4, 1, 16, 16, requires_grad=True)
    plain = segmentation_loss(logits, target, 4.0, 7)
    torch.testing.assert_close(batch_loss(logits, target, config), plain)
    # every tile held, the network where its start was: nothing to learn
    held = torch.ones(4, dtype=torch.bool)
    batch_loss(logits, target, config, held, logits.detach().clone()).backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits))
    # half held: labels on the others, each part by its share of the batch
    held = torch.tensor([True, False, True, False])
    start = torch.randn(4, 1, 16, 16)
    mixed = batch_loss(logits, target, config, held, start)
    expected = 0.5 * segmentation_loss(logits[~held], target[~held], 4.0, 7) + 2.0 * 0.5 * (
        anchor_loss(logits[held], start[held])
    )
    torch.testing.assert_close(mixed, expected)


def test_an_anchored_fine_tune_trains_and_records_its_weight(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "base", steps_per_epoch=2)
    train(config)
    config.output_dir = str(tmp_path / "tuned")
    config.init_model = str(tmp_path / "base" / "last.pt")
    config.sparse_training_images = 1
    config.anchor_weight = 1.0
    summary = train(config)
    assert np.isfinite(summary["history"][0]["loss"])
    tuned = load_model(tmp_path / "tuned" / "last.pt", device="cpu")
    assert tuned.metadata["training"]["anchor_weight"] == 1.0
    assert tuned.metadata["data_seen"]["train"]["images"] == {"standin": 6, "synth": 1}


def test_anchor_weight_needs_a_start_and_scenes_to_learn(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path / "run", steps_per_epoch=1)
    config.anchor_weight = 1.0
    with pytest.raises(ValueError, match="needs a starting network"):
        train(config)
    config.init_model = "default"
    with pytest.raises(ValueError, match="needs added scenes to learn"):
        train(config)
    config.anchor_weight = -1.0
    with pytest.raises(ValueError, match="anchor_weight must be >= 0, got -1.0"):
        train(config)


def test_a_fine_tune_with_frozen_batch_norm_keeps_the_starting_statistics(
    tmp_path: Path,
) -> None:
    config = _tiny_config(tmp_path / "base", steps_per_epoch=2)
    train(config)
    start = load_model(tmp_path / "base" / "last.pt", device="cpu").network.state_dict()
    for frozen in (True, False):
        config.output_dir = str(tmp_path / f"tuned{frozen}")
        config.init_model = str(tmp_path / "base" / "last.pt")
        config.freeze_batch_norm = frozen
        train(config)
        tuned = load_model(tmp_path / f"tuned{frozen}" / "last.pt", device="cpu")
        assert tuned.metadata["training"]["freeze_batch_norm"] is frozen
        state = tuned.network.state_dict()
        running = [k for k in state if "running_" in k]
        assert running
        same = [torch.equal(state[k], start[k]) for k in running]
        assert all(same) if frozen else not any(same)
        assert not torch.equal(state["encoder.stem.0.weight"], start["encoder.stem.0.weight"])
    config.init_model, config.freeze_batch_norm = None, True
    with pytest.raises(ValueError, match="freeze_batch_norm needs a starting network"):
        train(config)


def test_the_anchor_of_a_frozen_run_normalises_with_the_running_statistics() -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(base_width=4)).eval()
    x = torch.randn(2, 1, 64, 64) * 3 + 1
    frozen = freeze_batch_norm(network.train())
    for module in network.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()
    anchor = anchor_network(frozen, batch_statistics=False)
    torch.testing.assert_close(anchor(x), network(x))
    torch.testing.assert_close(anchor(x), network.eval()(x))
