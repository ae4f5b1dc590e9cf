"""Training of the segmentation network (CPU or GPU), resumable and seedable.

Data: image/mask folders (e.g. the EMPS training images with a nominal pixel size) and/or
synthetic micrographs from :mod:`antema_scale.synth`. Each source is split 60/20/20 into
train/validation/test with a fixed seed (:func:`antema_scale.segment.datasets.split_ids`;
synthetic images get disjoint seed ranges per split). Images are prepared exactly as at
inference (working grid, blur, standardise), then sampled as augmented tiles and
whole-image views (:mod:`antema_scale.segment.augment`).

Optimisation: AdamW with a linear warm-up and cosine decay over all planned steps, loss =
binary cross-entropy (background in narrow gaps between particles weighted up, optionally
the pixels next to outlines too) + soft Dice on the particle class (or the Lovász hinge,
``TrainConfig.loss``). After every epoch the model is
evaluated on the validation images (whole images, tiled exactly like :func:`predict`);
``last.pt`` (model file) and ``state.pt`` (optimiser/schedule/history) are written every
epoch and ``best.pt`` whenever the validation score (mean over sources of particle IoU and
instance F1) improves.
``resume=True`` continues from ``state.pt``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.morphology import remove_small_objects
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel

from antema_scale.segment.augment import (
    Augmentation,
    PreparedImage,
    batch_views,
    draw_images,
)
from antema_scale.segment.datasets import (
    EMPS_NOMINAL_PIXEL_SIZE_NM,
    LabelledImage,
    cycled_mode,
    dense_raft_images,
    folder_ids,
    load_folder_pairs,
    sparse_images,
    split_ids,
    standin_micrograph,
    synthetic_images,
)
from antema_scale.segment.inference import predict_prepared
from antema_scale.segment.metrics import confusion_matrix, instance_matches, pixel_metrics
from antema_scale.segment.model_file import save_model
from antema_scale.segment.network import (
    DeepLabV3Plus,
    EnsembleConfig,
    NetworkConfig,
    NetworkEnsemble,
    build_network,
)
from antema_scale.segment.precision import autocast_dtype
from antema_scale.segment.preprocess import Preprocessing, prepare_image, resample
from antema_scale.segment.widen import widen_state_dict

__all__ = [
    "TrainConfig",
    "ema_decay_at",
    "gap_loss",
    "gap_map",
    "hard_example_weights",
    "image_difficulty",
    "iter_split",
    "load_split",
    "lovasz_hinge",
    "outline_map",
    "prepare_labelled",
    "prepare_loaded",
    "segmentation_loss",
    "split_loaders",
    "split_size",
    "train",
    "training_autocast_dtype",
    "weight_average",
]

SPLITS = ("train", "val", "test")
#: Components smaller than this (working-grid px) are ignored by the validation instance F1.
MIN_INSTANCE_PX = 16
#: Synthetic seeds start here for each split (disjoint ranges).
SYNTH_SEED_BASE = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}
#: Seeds of the dense-raft validation scenes (``TrainConfig.raft_validation_images``).
RAFT_SEED_BASE = 4_000_000
#: Seeds of the dense-raft training scenes (``TrainConfig.raft_training_images``).
RAFT_TRAIN_SEED_BASE = 5_000_000
#: Seeds of the sparse training scenes (``TrainConfig.sparse_training_images``).
SPARSE_TRAIN_SEED_BASE = 5_500_000


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model metadata).

    Lengths are in pixels of the working grid unless stated; pixel sizes in nm/px.
    ``data_workers`` > 1 prepares the data in that many processes (spawned: a script that
    calls :func:`train` needs the usual ``if __name__ == "__main__":`` guard); the
    prepared images do not depend on it. ``precision`` is the type of the training
    forward pass (:func:`training_autocast_dtype`); validation always runs in float32.
    ``ema_decay`` > 0 validates and saves a moving average of the weights instead of the
    last step's (:func:`weight_average`). ``anchor_weight`` > 0 (fine-tunes with added
    sparse or raft scenes only) trains every other image toward the starting network's
    own probabilities instead of its labels (:func:`anchored_images`, :func:`anchor_loss`);
    ``freeze_batch_norm`` keeps the batch-norm statistics of the starting network
    (:func:`freeze_batch_norm`).
    """

    output_dir: str = "runs/train"
    folders: list[tuple[str, str, float]] = field(default_factory=list)
    synthetic_images: int = 0
    synthetic_shape: tuple[int, int] = (512, 512)
    synthetic_generator: str = "synth"
    synthetic_annotations: float = 0.0
    raft_validation_images: int = 0
    raft_training_images: int = 0
    sparse_training_images: int = 0
    base_width: int = 16
    backbone: str = "resnet18"
    detail_channels: int = 0
    output_stride: int = 16
    gap_channel: bool = False
    pixel_size_range_nm: tuple[float, float] = (0.125, 0.5)
    sigma_px: float = 1.0
    epochs: int = 30
    steps_per_epoch: int = 150
    batch_size: int = 8
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    split_seed: int = 0
    threads: int = 2
    data_workers: int = 1
    device: str = "auto"
    precision: str = "auto"
    max_images_per_source: int | None = None
    max_val_images_per_source: int | None = 40
    augmentation: Augmentation = field(default_factory=Augmentation)
    gap_weight: float = 4.0
    gap_px: int = 7
    outline_weight: float = 0.0
    hard_examples: float = 0.0
    ema_decay: float = 0.0
    anchor_weight: float = 0.0
    freeze_batch_norm: bool = False
    loss: str = "bce-dice"
    init_model: str | None = None
    command: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        data = asdict(self)
        data["augmentation"] = self.augmentation.to_dict()
        data["folders"] = [list(f) for f in self.folders]
        data["synthetic_shape"] = list(self.synthetic_shape)
        data["pixel_size_range_nm"] = list(self.pixel_size_range_nm)
        return data


def gap_map(target: torch.Tensor, gap_px: int) -> torch.Tensor:
    """Background pixels in gaps narrower than ``gap_px`` px between particles.

    The morphological closing of the 0/1 target with a ``gap_px`` square (max-pooling),
    minus the target: the thin background channels between neighbouring particles (and
    narrow concavities) that a smoothing network tends to fill, merging particles.
    ``target`` is ``(N, 1, H, W)``; the result is 0/1 of the same shape.
    """
    if gap_px < 2:
        return torch.zeros_like(target)
    pad = gap_px // 2
    dilated = F.max_pool2d(target, gap_px, stride=1, padding=pad)
    outside = F.pad(dilated, (pad, pad, pad, pad), value=0.0)  # background beyond the edge
    closed = -F.max_pool2d(-outside, gap_px, stride=1)
    closed = closed[..., : target.shape[-2], : target.shape[-1]]
    return (closed - target).clamp(min=0.0)


def outline_map(target: torch.Tensor) -> torch.Tensor:
    """Pixels on either side of a particle outline: 3x3 dilation minus 3x3 erosion.

    The one-pixel band inside and outside every edge of the 0/1 ``(N, 1, H, W)`` target,
    where the outline errors of a segmentation lie (the image border is not an edge).
    """
    dilated = F.max_pool2d(target, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-F.pad(target, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return dilated - eroded


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász hinge loss: a convex surrogate of 1 − particle IoU over all pixels given.

    Berman, Triki & Blaschko (CVPR 2018): the hinge errors ``1 − logit · sign`` (sign +1 on
    particle, −1 on background) are sorted, and each is weighted by how much the Jaccard
    loss of the whole batch grows when that pixel is counted wrong after the ones before
    it. Its value on a perfect, confident prediction is 0; on logits 0 everywhere it is
    1 (every pixel sits on the hinge). The pixels of all tiles count as one set, the
    micro-averaged IoU that ``evaluate`` reports.
    """
    truth = target.reshape(-1).float()
    signs = 2.0 * truth - 1.0
    errors = 1.0 - logits.reshape(-1).float() * signs
    errors_sorted, order = torch.sort(errors, descending=True)
    truth_sorted = truth[order]
    positives = truth_sorted.sum()
    intersection = positives - truth_sorted.cumsum(0)
    union = positives + (1.0 - truth_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    weights = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return torch.dot(F.relu(errors_sorted), weights)


#: Values of ``TrainConfig.loss``: cross-entropy plus an overlap term.
TRAINING_LOSSES = ("bce-dice", "bce-lovasz")


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gap_weight: float = 0.0,
    gap_px: int = 7,
    overlap: str = "dice",
    outline_weight: float = 0.0,
) -> torch.Tensor:
    """Binary cross-entropy + an overlap loss (particle class) of logits vs 0/1 targets.

    The overlap term is the soft Dice loss (``overlap="dice"``) or the Lovász hinge
    (``"lovasz"``, :func:`lovasz_hinge`, a surrogate of 1 − IoU). With ``gap_weight > 0``
    the cross-entropy of background pixels in narrow gaps between particles
    (:func:`gap_map`) counts ``1 + gap_weight`` times, so that the network keeps
    touching-but-separate particles apart (the idea of U-Net's border weight map). With
    ``outline_weight > 0`` the pixels next to every outline (:func:`outline_map`) count
    ``1 + outline_weight`` times (the weights add where both apply).
    """
    if overlap not in ("dice", "lovasz"):
        raise ValueError(f"overlap must be 'dice' or 'lovasz', got {overlap!r}")
    weight = torch.ones_like(target)
    if gap_weight > 0:
        weight = weight + gap_weight * gap_map(target, gap_px)
    if outline_weight > 0:
        weight = weight + outline_weight * outline_map(target)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    if overlap == "lovasz":
        return bce + lovasz_hinge(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum() + target.sum() + 1.0)
    return bce + dice


#: Image ids of the scenes ``--sparse-training`` and ``--raft-training`` add: an anchored
#: fine-tune (``TrainConfig.anchor_weight``) learns these from their labels.
ADDED_SCENE_PREFIXES = ("sparse-", "raft-")


def anchored_images(images: Sequence[PreparedImage]) -> np.ndarray:
    """Which training images an anchored fine-tune trains toward the starting network.

    True for every image except the added sparse and raft scenes
    (:data:`ADDED_SCENE_PREFIXES`): on those the fine-tune learns from the labels what the
    starting network gets wrong (empty, uneven support; touching particles), on all others
    it is held to what the starting network already predicts, so that it does not drift
    where it was right ("learning without forgetting", Li & Hoiem 2016).
    """
    return np.array([not p.image_id.startswith(ADDED_SCENE_PREFIXES) for p in images])


def anchor_network(network: torch.nn.Module, batch_statistics: bool = True) -> torch.nn.Module:
    """A frozen copy of the starting network that computes what it would in training.

    With ``batch_statistics`` batch norm normalises with the statistics of the batch, as
    the network being trained does, but never updates its running statistics; without, it
    uses the running statistics (for a run with :func:`freeze_batch_norm`). Dropout is off.
    So on the first step the copy's logits equal the trained network's (without dropout)
    and the anchor loss measures only how far the fine-tune has moved.
    """
    anchor = copy.deepcopy(network).requires_grad_(False).train()
    for module in anchor.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0
            module.train(batch_statistics)
        elif isinstance(module, torch.nn.Dropout):
            module.eval()
    return anchor


def freeze_batch_norm(network: torch.nn.Module) -> torch.nn.Module:
    """Put every batch norm of ``network`` in eval mode: running statistics, never updated.

    For fine-tunes (``TrainConfig.freeze_batch_norm``): the training forward pass then
    normalises as inference does, and the statistics the starting network was shipped with
    do not drift with the fine-tune's batches (its scale and shift are still trained).
    Call after ``network.train()``. Returns ``network``.
    """
    for module in network.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    return network


def anchor_loss(logits: torch.Tensor, anchor_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` against the starting network's probabilities.

    Soft targets ``sigmoid(anchor_logits)``: its gradient ``sigmoid(logits) − target``
    vanishes where the two networks agree, so it pulls back only where the fine-tune moved.
    """
    return F.binary_cross_entropy_with_logits(logits, torch.sigmoid(anchor_logits))


def batch_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    config: TrainConfig,
    held: torch.Tensor | None = None,
    anchor_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one batch of ``(N, C, T, T)`` logits against 0/1 targets.

    :func:`segmentation_loss` of the particle channel with the run's options, plus
    :func:`gap_loss` of the gap channel when the network has one. In an anchored fine-tune
    the tiles where the boolean ``(N,)`` ``held`` is true are trained toward
    ``anchor_logits`` (the starting network's, same shape) with :func:`anchor_loss` times
    ``config.anchor_weight`` instead; each part counts by its share of the batch's tiles.
    """
    if held is None or anchor_logits is None:
        held = torch.zeros(len(logits), dtype=torch.bool, device=logits.device)
    learnt = ~held
    loss = logits.new_zeros(())
    if learnt.any():
        part = segmentation_loss(
            logits[learnt, :1],
            target[learnt],
            config.gap_weight,
            config.gap_px,
            overlap=config.loss.removeprefix("bce-"),
            outline_weight=config.outline_weight,
        )
        if logits.shape[1] > 1:  # the gap channel (NetworkConfig.gap_channel)
            part = part + gap_loss(logits[learnt, 1:], target[learnt], config.gap_px)
        loss = loss + learnt.float().mean() * part
    if held.any():
        assert anchor_logits is not None
        loss = loss + config.anchor_weight * held.float().mean() * anchor_loss(
            logits[held], anchor_logits[held]
        )
    return loss


def prepare_labelled(item: LabelledImage, preprocessing: Preprocessing) -> PreparedImage:
    """Put a labelled image onto the working grid exactly as inference does."""
    image, _ = prepare_image(item.image, item.pixel_size_nm, preprocessing)
    mask = resample(item.mask.astype(np.float32), image.shape) > 0.5
    return PreparedImage(image, mask, item.image_id, item.source)


def prepare_loaded(
    loaders: Sequence[Callable[[], LabelledImage]],
    preprocessing: Preprocessing,
    *,
    workers: int = 1,
) -> Iterator[PreparedImage]:
    """Load and prepare each image of :func:`split_loaders`, in order, in ``workers`` processes.

    Generating synthetic micrographs and resampling images is pure CPU work in numpy, one
    image at a time, so a training run prepares its data about ``workers`` times faster
    with one process per core. ``workers=1`` (or a single image) runs in this process.
    The result does not depend on ``workers``.
    """
    if workers <= 1 or len(loaders) <= 1:
        for load in loaders:
            yield prepare_labelled(load(), preprocessing)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent may already run torch's OpenMP threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(loaders)), mp_context=context) as pool:
        yield from pool.map(_load_and_prepare, loaders, [preprocessing] * len(loaders))


def _load_and_prepare(
    load: Callable[[], LabelledImage], preprocessing: Preprocessing
) -> PreparedImage:
    return prepare_labelled(load(), preprocessing)


def load_split(config: TrainConfig, split: str, limit: int | None = None) -> list[LabelledImage]:
    """The labelled images of one split (``train``/``val``/``test``) of a config's sources.

    ``limit`` (default ``config.max_images_per_source``) caps the images per source.
    """
    return list(iter_split(config, split, limit))


def split_size(config: TrainConfig, split: str, limit: int | None = None) -> int:
    """How many images :func:`iter_split` yields for these arguments (cheap: no image is read)."""
    return len(split_loaders(config, split, limit))


def iter_split(
    config: TrainConfig, split: str, limit: int | None = None
) -> Iterator[LabelledImage]:
    """The images of :func:`load_split` one at a time (synthetic ones generated on demand).

    Sources come in a fixed order: labelled folders, synthetic micrographs, then the
    dense-raft scenes (``val`` with ``config.raft_validation_images``; ``train`` with
    ``config.raft_training_images``, where they join the synthetic source), then the
    sparse scenes of ``config.sparse_training_images`` (``train``, synthetic source).
    """
    for load in split_loaders(config, split, limit):
        yield load()


def split_loaders(
    config: TrainConfig, split: str, limit: int | None = None
) -> list[Callable[[], LabelledImage]]:
    """One picklable loader per image of a split, in :func:`iter_split` order.

    Each loader reads or generates one :class:`LabelledImage` when called, on its own:
    the same image whichever process calls it (a synthetic image's mode and overlap level
    are fixed here, from its position, as :func:`synthetic_images` cycles them).
    """
    _check_split(split)
    limit = config.max_images_per_source if limit is None else limit
    loaders: list[Callable[[], LabelledImage]] = []
    for images_dir, masks_dir, pixel_size in config.folders:
        ids = split_ids(folder_ids(images_dir), seed=config.split_seed)[split]
        if limit is not None:
            ids = ids[:limit]
        source = "emps" if "emps" in str(images_dir).lower() else "folder"
        loaders += [
            partial(_folder_image, images_dir, masks_dir, pixel_size, stem, source) for stem in ids
        ]
    n_synth = _synthetic_count(config, split, limit)
    seeds = range(SYNTH_SEED_BASE[split], SYNTH_SEED_BASE[split] + n_synth)
    if config.synthetic_generator == "synth":
        options = {
            "shape": config.synthetic_shape,
            "pixel_size_range_nm": tuple(config.pixel_size_range_nm),
            "annotations": config.synthetic_annotations if split == "train" else 0.0,
        }
        loaders += [
            partial(_synthetic_image, seed, *cycled_mode(i), options)
            for i, seed in enumerate(seeds)
        ]
    else:
        loaders += [partial(_standin_image, seed, config.synthetic_shape) for seed in seeds]
    if split == "val" and config.raft_validation_images:
        rafts = range(RAFT_SEED_BASE, RAFT_SEED_BASE + config.raft_validation_images)
        loaders += [partial(_raft_image, seed, config.synthetic_shape) for seed in rafts]
    if split == "train" and config.raft_training_images:
        rafts = range(RAFT_TRAIN_SEED_BASE, RAFT_TRAIN_SEED_BASE + config.raft_training_images)
        loaders += [partial(_raft_image, seed, config.synthetic_shape, "synth") for seed in rafts]
    if split == "train" and config.sparse_training_images:
        first = SPARSE_TRAIN_SEED_BASE
        sparse = range(first, first + config.sparse_training_images)
        loaders += [partial(_sparse_image, seed, config.synthetic_shape) for seed in sparse]
    return loaders


def _folder_image(
    images_dir: str, masks_dir: str, pixel_size_nm: float, stem: str, source: str
) -> LabelledImage:
    (item,) = load_folder_pairs(images_dir, masks_dir, pixel_size_nm, ids=[stem], source=source)
    return item


def _synthetic_image(seed: int, mode: str, overlap: str, options: dict[str, Any]) -> LabelledImage:
    (item,) = synthetic_images([seed], modes=(mode,), overlaps=(overlap,), **options)
    return item


def _raft_image(seed: int, shape: tuple[int, int], source: str = "rafts") -> LabelledImage:
    (item,) = dense_raft_images([seed], shape=shape, source=source)
    return item


def _sparse_image(seed: int, shape: tuple[int, int]) -> LabelledImage:
    (item,) = sparse_images([seed], shape=shape)
    return item


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _synthetic_count(config: TrainConfig, split: str, limit: int | None) -> int:
    n_synth = round(config.synthetic_images * {"train": 0.6, "val": 0.2, "test": 0.2}[split])
    return n_synth if limit is None else min(n_synth, limit)


def _standin_image(seed: int, shape: tuple[int, int]) -> LabelledImage:
    rng = np.random.default_rng(seed)
    return standin_micrograph(
        seed,
        shape,
        mode=("hrtem", "haadf")[seed % 2],
        pixel_size_nm=float(np.exp(rng.uniform(np.log(0.05), np.log(2.0)))),
        diameter_nm=(2.0, 30.0),
        noise=float(rng.uniform(0.02, 0.2)),
    )


def _data_key(config: TrainConfig, split: str, preprocessing: Preprocessing) -> str:
    """Hash of everything that determines the prepared images of a split."""
    fields = {
        "split": split,
        "folders": [list(f) for f in config.folders],
        "synthetic": [config.synthetic_images, list(config.synthetic_shape)],
        "generator": config.synthetic_generator,
        "split_seed": config.split_seed,
        "limits": [config.max_images_per_source, config.max_val_images_per_source],
        "preprocessing": preprocessing.to_dict(),
    }
    if config.synthetic_annotations and split == "train":  # keeps older keys (and caches) valid
        fields["annotations"] = config.synthetic_annotations
    if config.raft_validation_images and split == "val":
        fields["rafts"] = config.raft_validation_images
    if config.raft_training_images and split == "train":
        fields["rafts"] = config.raft_training_images
    if config.sparse_training_images and split == "train":
        fields["sparse"] = config.sparse_training_images
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _prepared_split(
    config: TrainConfig,
    split: str,
    preprocessing: Preprocessing,
    out: Path,
    data_progress: Callable[[str, int, int], None] | None = None,
) -> list[PreparedImage]:
    """Prepared images of a split, cached in ``out`` (``data-<split>-<key>.npz``).

    ``data_progress(split, done, total)`` is called before the first and after every
    image that is prepared (not when the split comes from the cache).
    """
    cache = out / f"data-{split}-{_data_key(config, split, preprocessing)}.npz"
    if cache.is_file():
        return read_prepared_cache(cache)
    limit = config.max_val_images_per_source if split == "val" else None
    if config.max_images_per_source is not None:
        limit = min(limit or config.max_images_per_source, config.max_images_per_source)
    loaders = split_loaders(config, split, limit)
    prepared: list[PreparedImage] = []
    if data_progress is not None:
        data_progress(split, 0, len(loaders))
    for item in prepare_loaded(loaders, preprocessing, workers=config.data_workers):
        prepared.append(item)
        if data_progress is not None:
            data_progress(split, len(prepared), len(loaders))
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps([[p.image_id, p.source] for p in prepared]))
    }
    for i, p in enumerate(prepared):
        arrays[f"image{i}"], arrays[f"mask{i}"] = p.image, p.mask
    np.savez(cache, **arrays)
    return prepared


def read_prepared_cache(path: str | Path) -> list[PreparedImage]:
    """The prepared images of a split as a training run cached them (``data-<split>-*.npz``)."""
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        return [
            PreparedImage(data[f"image{i}"], data[f"mask{i}"], image_id, source)
            for i, (image_id, source) in enumerate(meta)
        ]


def _source_weights(images: Sequence[PreparedImage]) -> np.ndarray:
    """Sampling weights: every source equally often, images within a source by area."""
    sources = sorted({p.source for p in images})
    weights = np.zeros(len(images))
    for source in sources:
        idx = [i for i, p in enumerate(images) if p.source == source]
        area = np.array([images[i].image.size for i in idx], dtype=float)
        weights[idx] = area / area.sum() / len(sources)
    return weights / weights.sum()


def image_difficulty(
    images: Sequence[PreparedImage], probabilities: Sequence[np.ndarray]
) -> np.ndarray:
    """How wrong a prediction is, per image: ``1 - particle IoU`` (0 = perfect).

    An image without particles that the network leaves empty scores 0; one where it finds
    particles that are not there scores 1.
    """
    out = np.zeros(len(images))
    for i, (prep, prob) in enumerate(zip(images, probabilities, strict=True)):
        iou = pixel_metrics(confusion_matrix(prep.mask, np.asarray(prob) > 0.5))["iou_particle"]
        out[i] = 0.0 if np.isnan(iou) else 1.0 - iou  # NaN: no particle in truth or prediction
    return out


def hard_example_weights(
    images: Sequence[PreparedImage],
    weights: np.ndarray,
    difficulty: np.ndarray,
    strength: float,
) -> np.ndarray:
    """Sampling weights that draw the images a network gets wrong more often.

    Each image's weight is multiplied by ``1 + strength * difficulty / mean difficulty of
    its source`` (see :func:`image_difficulty`) and the weights of each source are then
    scaled back to that source's share, so sources keep their balance and within a
    source an image of average difficulty is drawn ``1 + strength`` times as often as a
    perfect one. ``strength = 0`` returns ``weights`` unchanged.
    """
    if strength < 0:
        raise ValueError(f"hard-example strength must be >= 0, got {strength}")
    weights = np.asarray(weights, dtype=float)
    if strength == 0:
        return weights
    out = weights.copy()
    for source in {p.source for p in images}:
        idx = np.array([i for i, p in enumerate(images) if p.source == source])
        mean = float(difficulty[idx].mean())
        factor = 1.0 + strength * (difficulty[idx] / mean if mean > 0 else 0.0)
        scaled = weights[idx] * factor
        out[idx] = scaled * (weights[idx].sum() / scaled.sum())
    return out / out.sum()


def _training_difficulty(
    network: DeepLabV3Plus | NetworkEnsemble,
    images: Sequence[PreparedImage],
    device: torch.device,
    out: Path,
    resuming: bool,
    progress: Callable[[str, int, int], None] | None = None,
    chunk: int = 8,
) -> np.ndarray:
    """:func:`image_difficulty` of the training images for the network as it starts,
    kept in ``out/difficulty.npy`` so that a resumed run samples as the original did (a
    run that starts afresh in the same folder measures its own starting network again).

    Images are segmented ``chunk`` at a time (memory stays that of a few probability maps);
    ``progress("difficulty", done, total)`` is called before the first and after every chunk.
    """
    path = out / "difficulty.npy"
    if resuming and path.is_file():
        cached = np.load(path)
        if cached.shape == (len(images),):
            return cached
    difficulty = np.zeros(len(images))
    if progress is not None:
        progress("difficulty", 0, len(images))
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        probs = predict_prepared(
            network, [p.image for p in part], batch_size=2, device=device, precision="fp32"
        )
        difficulty[start : start + len(part)] = image_difficulty(part, probs)
        if progress is not None:
            progress("difficulty", start + len(part), len(images))
    np.save(path, difficulty)
    return difficulty


def gap_loss(gap_logits: torch.Tensor, target: torch.Tensor, gap_px: int) -> torch.Tensor:
    """Loss of the gap channel: cross-entropy + soft Dice against :func:`gap_map`.

    ``gap_logits`` and the 0/1 particle ``target`` are ``(N, 1, H, W)``; the gap target is
    the background in gaps narrower than ``gap_px`` between particles. The Dice term keeps
    the rare gap pixels from being outvoted by the background.
    """
    gaps = gap_map(target, gap_px)
    bce = F.binary_cross_entropy_with_logits(gap_logits, gaps)
    prob = torch.sigmoid(gap_logits)
    dice = 1.0 - (2.0 * (prob * gaps).sum() + 1.0) / (prob.sum() + gaps.sum() + 1.0)
    return bce + dice


def validate(
    network: DeepLabV3Plus, images: Sequence[PreparedImage], device: torch.device
) -> dict[str, dict[str, float]]:
    """Pixel metrics and instance F1 of whole validation images, per source and over all.

    ``instance_f1``: connected components of at least :data:`MIN_INSTANCE_PX` px matched
    one-to-one at IoU >= 0.5; it drops when the network merges neighbouring particles.
    """
    probs = predict_prepared(  # float32 on every device: checkpoint selection stays stable
        network, [p.image for p in images], batch_size=2, device=device, precision="fp32"
    )
    totals: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for prep, prob in zip(images, probs, strict=True):
        predicted = prob > 0.5
        cm = confusion_matrix(prep.mask, predicted)
        n_t, n_p, matches = instance_matches(
            remove_small_objects(prep.mask, max_size=MIN_INSTANCE_PX - 1),
            remove_small_objects(predicted, max_size=MIN_INSTANCE_PX - 1),
        )
        for key in (prep.source, "all"):
            totals[key] = totals.get(key, np.zeros((2, 2), dtype=np.int64)) + cm
            counts[key] = counts.get(key, np.zeros(3, dtype=np.int64)) + (n_t, n_p, len(matches))
    out = {}
    for key, cm in totals.items():
        n_t, n_p, n_m = counts[key]
        out[key] = {**pixel_metrics(cm), "instance_f1": float(2 * n_m / max(1, n_t + n_p))}
    return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _score(metrics: dict[str, dict[str, float]]) -> float:
    """Model-selection score: mean over sources of (particle IoU + instance F1) / 2."""
    per_source = [
        0.5 * (m["iou_particle"] + m.get("instance_f1", m["iou_particle"]))
        for k, m in metrics.items()
        if k != "all"
    ]
    return float(np.nanmean(per_source)) if per_source else float("nan")


def initialise_from(
    network: DeepLabV3Plus | NetworkEnsemble, model_path: str, preprocessing: Preprocessing
) -> dict[str, Any]:
    """Copy the weights of a model file into ``network`` (fine-tuning).

    ``model_path`` is a model file or ``"default"`` (the model shipped with the package).
    Its architecture and pre-processing must equal the run's, or the weights would not
    fit or would see differently prepared images. Three exceptions: a model without the
    detail refinement may initialise a network with one (``detail_channels > 0``); the
    refinement starts as a no-op (:class:`~antema_scale.segment.network.DetailRefinement`),
    so fine-tuning starts from the old model's predictions. Likewise a model without the
    gap channel may gain one (it starts predicting no gaps). The output stride may differ
    (the weights are the same at 16 and 8). And the run may be wider (``--width`` above
    the model's): the model is embedded so that the wider network starts computing exactly
    what it did (:func:`~antema_scale.segment.widen.widen_state_dict`). An ensemble
    initialises an ensemble of the same members (see :func:`network_for_run`).

    Returns
    -------
    dict
        What was loaded: path, weights sha256, training command and data it saw.

    Raises
    ------
    ValueError
        Architecture (backbone, width, ...) or pre-processing differ.
    """
    from antema_scale.segment.model_file import load_model, training_records

    source = load_model(None if model_path == "default" else model_path, device="cpu")
    source_config, run_config = source.network.config, network.config
    if isinstance(source_config, EnsembleConfig) or isinstance(run_config, EnsembleConfig):
        compatible = source_config == run_config  # an ensemble is fine-tuned as a whole
        hint = (
            "an ensemble fine-tunes only as the same ensemble: as many members, each with "
            "the run's --backbone, --width, --detail-channels, --output-stride and "
            "--gap-channel; a single network cannot start from an ensemble or the reverse"
        )
    else:
        gains_detail = source_config.detail_channels == 0 and run_config.detail_channels > 0
        same_detail = source_config.detail_channels == run_config.detail_channels
        comparable = replace(
            source_config,
            detail_channels=run_config.detail_channels,
            output_stride=run_config.output_stride,
            gap_channel=run_config.gap_channel,
            base_width=run_config.base_width,
        )
        gap_ok = source_config.gap_channel <= run_config.gap_channel  # may gain, not lose
        width_ok = source_config.base_width <= run_config.base_width  # may grow, not shrink
        compatible = (
            comparable == run_config and (gains_detail or same_detail) and gap_ok and width_ok
        )
        hint = (
            "match --backbone and --detail-channels, and --width at least the model's; a "
            "model without the detail refinement or the gap channel may gain one, and "
            "--output-stride may differ"
        )
    if not compatible:
        raise ValueError(
            f"cannot initialise from {model_path}: its network is "
            f"{source_config.to_dict()}, this run's is {run_config.to_dict()} ({hint})"
        )
    if source.preprocessing != preprocessing:
        raise ValueError(
            f"cannot initialise from {model_path}: it was trained on pre-processing "
            f"{source.preprocessing.to_dict()['pixel_size_range_nm']} nm/px, "
            f"sigma {source.preprocessing.sigma_px} px; this run uses "
            f"{preprocessing.to_dict()['pixel_size_range_nm']} nm/px, sigma "
            f"{preprocessing.sigma_px} px (match --pixel-min/--pixel-max)"
        )
    weights = source.network.state_dict()
    widened = not isinstance(run_config, EnsembleConfig) and (
        run_config.base_width > source_config.base_width
    )
    if widened:
        weights = widen_state_dict(source.network, network)
    missing, unexpected = network.load_state_dict(weights, strict=False)
    if unexpected or any(not key.startswith(("detail.", "gap_head.")) for key in missing):
        raise ValueError(f"cannot initialise from {model_path}: weights do not fit the network")
    meta = source.metadata
    commands = [record.get("command") for record in training_records(meta)]
    return {
        **({"widened_from_base_width": source_config.base_width} if widened else {}),
        "path": str(model_path),
        "weights_sha256": meta.get("weights_sha256"),
        "command": commands[0] if len(commands) == 1 else commands,
        "images_seen": {
            split: info["images"]
            for split, info in meta.get("data_seen", {}).items()
            if isinstance(info, dict) and "images" in info
        },
    }


def network_for_run(config: TrainConfig) -> DeepLabV3Plus | NetworkEnsemble:
    """A freshly initialised network of the run's architecture (``--width``, ...).

    When the run fine-tunes an ensemble (``config.init_model`` holds a
    :class:`~antema_scale.segment.network.NetworkEnsemble`), it is an ensemble of as many
    networks of that architecture, trained as a whole on the loss of its mean logits.
    """
    from antema_scale.segment.model_file import default_model_path, read_model_file

    run_config = NetworkConfig(
        backbone=config.backbone,
        base_width=config.base_width,
        detail_channels=config.detail_channels,
        output_stride=config.output_stride,
        gap_channel=config.gap_channel,
    )
    members = 1
    if config.init_model is not None:
        path = default_model_path() if config.init_model == "default" else config.init_model
        architecture = read_model_file(path)["metadata"].get("architecture") or {}
        members = len(architecture.get("members") or [None])
    if members == 1:
        return build_network(run_config)
    return NetworkEnsemble([build_network(run_config) for _ in range(members)])


def ema_decay_at(decay: float, updates: int) -> float:
    """Decay of the weight average at its ``updates``-th update (0 = the first).

    ``min(decay, (1 + updates) / (10 + updates))``: the early averages forget the
    starting weights quickly (a fresh network's are random), later ones keep ``decay``.
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def weight_average(network: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``network``'s weights and batch-norm statistics.

    Call ``update_parameters(network)`` after every optimiser step; the averaged network is
    ``.module``. Each update moves the average to ``d * average + (1 - d) * weights`` with
    ``d = ema_decay_at(decay, updates)`` (the first update copies the weights). The
    average of the last ~``1 / (1 - decay)`` steps is steadier than the last step's
    weights, which jump with each batch (``train --ema-decay``).
    """

    def average(
        averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor | int
    ) -> torch.Tensor:
        d = ema_decay_at(decay, int(updates))
        return averaged * d + current * (1.0 - d)

    return AveragedModel(network, avg_fn=average, use_buffers=True)


#: Values of ``TrainConfig.precision``: float16 is left out (it needs loss scaling).
TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def training_autocast_dtype(device: torch.device | str, precision: str) -> torch.dtype | None:
    """Autocast type of the training forward pass; ``None`` = float32.

    ``"auto"`` is bfloat16 on a CUDA device that supports it and float32 anywhere else;
    ``"bf16"`` forces bfloat16 (on the CPU it pays off with AMX/AVX512-BF16: a width-16
    step of 8 x 256² took 0.155 s instead of 0.22 s on the session-7 Xeon); ``"fp32"``
    turns autocast off. The loss is always computed in float32.

    Raises
    ------
    ValueError
        For any other value, e.g. ``"fp16"``.
    """
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(
            f"training precision must be one of {', '.join(TRAINING_PRECISIONS)}, "
            f"got {precision!r} (float16 training would need loss scaling)"
        )
    dtype = autocast_dtype(device, precision)
    return None if dtype is torch.float16 else dtype  # "auto" on a GPU without bfloat16


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
    data_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Train a network; returns the run summary (also written to ``summary.json``).

    Parameters
    ----------
    config : TrainConfig
        The run.
    resume : bool
        Continue from ``<output_dir>/state.pt`` if it exists.
    progress : callable, optional
        Called with a dict after every epoch (epoch, step, loss, metrics, seconds).
    data_progress : callable, optional
        Called as ``data_progress(split, done, total)`` while the images of a split are
        generated/read and prepared (skipped for splits found in the cache of ``output_dir``),
        and as ``data_progress("difficulty", done, total)`` while the starting network
        segments the training images for ``hard_examples``.
    """
    from antema_scale.segment.model_file import resolve_device

    if config.loss not in TRAINING_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(TRAINING_LOSSES)}, got {config.loss!r}")
    if config.hard_examples < 0:
        raise ValueError(f"hard_examples must be >= 0, got {config.hard_examples}")
    for name in ("raft_validation_images", "raft_training_images", "sparse_training_images"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    if not 0 <= config.ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {config.ema_decay}")
    if config.anchor_weight < 0:
        raise ValueError(f"anchor_weight must be >= 0, got {config.anchor_weight}")
    if config.anchor_weight > 0 and config.init_model is None:
        raise ValueError("anchor_weight needs a starting network (init_model) to anchor to")
    if config.freeze_batch_norm and config.init_model is None:
        raise ValueError(
            "freeze_batch_norm needs a starting network (init_model) whose statistics to keep"
        )
    if config.anchor_weight > 0 and not (
        config.sparse_training_images or config.raft_training_images
    ):
        raise ValueError(
            "anchor_weight needs added scenes to learn (sparse_training_images or "
            "raft_training_images): on all other images it only repeats the starting network"
        )
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    forward_dtype = training_autocast_dtype(device, config.precision)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    preprocessing = Preprocessing(tuple(config.pixel_size_range_nm), config.sigma_px)
    network = network_for_run(config).to(device)
    init_from = None
    anchor: torch.nn.Module | None = None
    if config.init_model is not None:  # checked before the (slow) data preparation
        init_from = initialise_from(network, config.init_model, preprocessing)
        if config.anchor_weight > 0:
            anchor = anchor_network(network, batch_statistics=not config.freeze_batch_norm)
    started = time.perf_counter()
    train_set = _prepared_split(config, "train", preprocessing, out, data_progress)
    val_set = _prepared_split(config, "val", preprocessing, out, data_progress)
    if not train_set:
        raise ValueError("no training images: give --folder/--emps or --synthetic N")
    data_seconds = time.perf_counter() - started
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    averaged = weight_average(network, config.ema_decay) if config.ema_decay > 0 else None
    total_steps = config.epochs * config.steps_per_epoch
    history: list[dict[str, Any]] = []
    start_epoch, best = 0, -1.0
    state_path = out / "state.pt"
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        if averaged is not None and "averaged" in state:
            averaged.load_state_dict(state["averaged"])
        start_epoch, best = int(state["epoch"]), float(state["best"])
        history = json.loads(state["history"])
    weights = _source_weights(train_set)
    anchored = anchored_images(train_set)
    data_seen = {
        "train": _describe(train_set),
        "val": _describe(val_set),
        "emps_nominal_pixel_size_nm": EMPS_NOMINAL_PIXEL_SIZE_NM,
    }
    if config.hard_examples > 0:
        difficulty = _training_difficulty(
            network, train_set, device, out, start_epoch > 0, data_progress
        )
        weights = hard_example_weights(train_set, weights, difficulty, config.hard_examples)
        data_seen["hard_examples"] = {
            "strength": config.hard_examples,
            "mean_difficulty": {
                source: float(np.mean(difficulty[[p.source == source for p in train_set]]))
                for source in sorted({p.source for p in train_set})
            },
        }
    if init_from is not None:
        data_seen["initialised_from"] = init_from
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 1000 + epoch)
        network.train()
        if config.freeze_batch_norm:
            freeze_batch_norm(network)
        t0, losses = time.perf_counter(), []
        for i in range(config.steps_per_epoch):
            step = epoch * config.steps_per_epoch + i
            for group in optimiser.param_groups:
                group["lr"] = config.learning_rate * _lr_factor(
                    step, total_steps, config.warmup_steps
                )
            picks = draw_images(train_set, config.batch_size, rng, weights)
            images, masks = batch_views(train_set, picks, config.augmentation, rng)
            images = images.to(device)
            with torch.autocast(
                device.type, dtype=forward_dtype, enabled=forward_dtype is not None
            ):
                logits = network(images)
            logits, target = logits.float(), masks.to(device)
            anchor_logits, held = None, None
            if anchor is not None and anchored[picks].any():
                held = torch.from_numpy(anchored[picks]).to(device)
                with (
                    torch.no_grad(),
                    torch.autocast(
                        device.type, dtype=forward_dtype, enabled=forward_dtype is not None
                    ),
                ):
                    anchor_logits = anchor(images).float()  # batch norm sees the same batch
            loss = batch_loss(logits, target, config, held, anchor_logits)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if averaged is not None:
                averaged.update_parameters(network)
            losses.append(loss.item())
        train_seconds = time.perf_counter() - t0
        # the weights that are validated and saved: the running average when there is one
        kept = network if averaged is None else averaged.module
        metrics = validate(kept, val_set, device) if val_set else {}
        score = _score(metrics) if metrics else -float(np.mean(losses))
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * config.steps_per_epoch,
            "loss": float(np.mean(losses)),
            "lr": optimiser.param_groups[0]["lr"],
            "train_seconds": train_seconds,
            "val": metrics,
            "val_score": score,
        }
        history.append(record)
        meta = {
            "training": {**config.to_dict(), "epochs_done": epoch + 1},
            "data_seen": data_seen,
            "validation": metrics,
            "history": [{k: v for k, v in h.items() if k != "val"} for h in history],
        }
        save_model(out / "last.pt", kept, preprocessing, meta)
        if score > best:
            best = score
            save_model(out / "best.pt", kept, preprocessing, {**meta, "best_epoch": epoch + 1})
        state = {
            "network": network.state_dict(),
            "optimiser": optimiser.state_dict(),
            "epoch": epoch + 1,
            "best": best,
            "history": json.dumps(history),
        }
        if averaged is not None:
            state["averaged"] = averaged.state_dict()
        torch.save(state, state_path)
        if progress is not None:
            progress(record)
    summary = {
        "output_dir": str(out),
        "best_val_score": best,
        "epochs": len(history),
        "data_seconds": data_seconds,
        "history": history,
        "data_seen": data_seen,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _describe(images: Sequence[PreparedImage]) -> dict[str, Any]:
    by_source: dict[str, int] = {}
    for p in images:
        by_source[p.source] = by_source.get(p.source, 0) + 1
    return {"images": by_source, "ids": sorted(p.image_id for p in images)[:2000]}
