"""Accuracy side by side: segmenters x separation modes, on synthetic truth and held-out EMPS.

Test sets (each image carries its true *instances*, not only a union mask):

- synthetic micrographs at the overlap levels ``low``, ``medium``, ``high`` of
  :data:`antema_scale.synth.OVERLAP_LEVELS` (the paper's Fig. 7 scenario), bright-field
  and HAADF alternating; instances are the exact per-particle masks (overlaps belong to
  every particle covering them);
- the EMPS images of the held-out ``test`` split of :func:`antema_scale.segment.datasets.split_ids`
  (the split the segmentation model never trained on), instances from their label maps,
  at the nominal pixel size :data:`~antema_scale.segment.datasets.EMPS_NOMINAL_PIXEL_SIZE_NM`
  (EMPS has no calibration, so its "nm" are nominal).

Segmenters: the network (default: the shipped model), the classical threshold baseline,
and the true union mask (isolates the separation step). Per segmenter:

- pixel level (:func:`antema_scale.segment.evaluate.evaluate`): IoU and Dice of the
  particle class, global accuracy, F1 of connected components;

and per segmenter x separation mode (every mode of
:data:`antema_scale.particles.analyze.SEPARATION_MODES`; ``uecs-paper`` with the paper's
options) on the particles of :func:`antema_scale.particles.analyze_mask`:

- instance precision / recall / F1: one-to-one matches at IoU >= 0.5 (greedy by IoU);
- equivalent diameter: error of the mean and of the standard deviation of all measured
  particles against all true ones (nm), mean relative error of matched particles;
- split fraction: of the true pairs in contact (overlapping or touching, i.e. in one
  connected region of the union mask), the share whose two particles were both matched.

Regions of the true union mask that touch the image border are left out on both sides
(the analysis drops border-touching regions by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from antema_scale.synth import SyntheticMicrograph

#: Synthetic overlap levels of the accuracy benchmark (paper Fig. 7: low/medium/high).
OVERLAP_LEVELS: tuple[str, ...] = ("low", "medium", "high")
#: IoU at which a measured particle counts as finding a true one.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class Instance:
    """One particle's pixels on its bounding box.

    Attributes
    ----------
    mask : numpy.ndarray of bool
        Pixels inside the crop.
    offset : tuple of int
        ``(row, col)`` of ``mask[0, 0]`` in the image.
    """

    mask: np.ndarray
    offset: tuple[int, int]

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(min_row, min_col, max_row, max_col)``, max exclusive (px)."""
        r, c = self.offset
        return r, c, r + self.mask.shape[0], c + self.mask.shape[1]


@dataclass
class TruthImage:
    """A test image with its true instances.

    Attributes
    ----------
    image : numpy.ndarray
        2-D float32 micrograph.
    pixel_size_nm : float
        nm/px (nominal for EMPS).
    instances : list of Instance
        True particles (may overlap).
    image_id : str
        Identifier.
    group : str
        Test set: ``synth-low``, ``synth-medium``, ``synth-high`` or ``emps``.
    """

    image: np.ndarray
    pixel_size_nm: float
    instances: list[Instance]
    image_id: str
    group: str

    @classmethod
    def from_micrograph(
        cls, micrograph: SyntheticMicrograph, image_id: str, group: str
    ) -> TruthImage:
        """The image and exact per-particle masks of a :class:`~antema_scale.synth.SyntheticMicrograph`."""
        return cls(
            image=np.asarray(micrograph.image, dtype=np.float32),
            pixel_size_nm=float(micrograph.pixel_size_nm),
            instances=[Instance(p.mask, tuple(p.offset)) for p in micrograph.particles],
            image_id=image_id,
            group=group,
        )

    @property
    def mask(self) -> np.ndarray:
        """Union of the true instances (bool)."""
        union = np.zeros(self.image.shape, dtype=bool)
        for instance in self.instances:
            r0, c0, r1, c1 = instance.bbox
            union[r0:r1, c0:c1] |= instance.mask
        return union


def synthetic_truth(
    *,
    levels: Sequence[str] = OVERLAP_LEVELS,
    n_per_level: int = 2,
    size: int = 1024,
    seed: int = 1000,
) -> list[TruthImage]:
    """Synthetic test images at each overlap level (bright-field and HAADF alternating).

    Parameters
    ----------
    levels : sequence of str
        Overlap levels (keys of :data:`antema_scale.synth.OVERLAP_LEVELS`).
    n_per_level : int
        Images per level.
    size : int
        Image side, px.
    seed : int
        Base seed (image ``i`` of a level uses ``seed + i``).

    Returns
    -------
    list of TruthImage
    """
    from antema_scale.benchmark.dataset import benchmark_config
    from antema_scale.synth import generate_micrograph

    images = []
    for level in levels:
        for index in range(n_per_level):
            mode = ("hrtem", "haadf")[index % 2]
            config = benchmark_config(size).with_(overlap=level, mode=mode)  # type: ignore[attr-defined]
            micrograph = generate_micrograph(config, seed + index)
            images.append(
                TruthImage.from_micrograph(
                    micrograph, f"synth-{level}-{mode}-{seed + index}", f"synth-{level}"
                )
            )
    return images


def instances_from_labels(labels: np.ndarray) -> list[Instance]:
    """One :class:`Instance` per non-zero label of an instance label map."""
    objects = ndimage.find_objects(np.asarray(labels, dtype=np.int64))
    out = []
    for value, box in enumerate(objects, start=1):
        if box is None:
            continue
        out.append(Instance(labels[box] == value, (box[0].start, box[1].start)))
    return out


def emps_truth(
    emps_dir: str | Path, *, limit: int | None = None, split: str = "test", split_seed: int = 0
) -> list[TruthImage]:
    """The EMPS images of the held-out split with their instance label maps.

    Parameters
    ----------
    emps_dir : str or Path
        EMPS folder with ``images/`` and ``segmaps/``.
    limit : int, optional
        Use only the first ``limit`` ids of the split (sorted).
    split : {"train", "val", "test"}
        Which split (the model trains on ``train`` and selects on ``val``).
    split_seed : int
        Seed of :func:`antema_scale.segment.datasets.split_ids` (as in training).

    Raises
    ------
    FileNotFoundError
        The folder, an image or a label map is missing.
    """
    from skimage.io import imread

    from antema_scale.segment.datasets import (
        EMPS_NOMINAL_PIXEL_SIZE_NM,
        IMAGE_SUFFIXES,
        folder_ids,
        load_folder_pairs,
        split_ids,
    )

    root = Path(emps_dir)
    images_dir, labels_dir = root / "images", root / "segmaps"
    ids = split_ids(folder_ids(images_dir), seed=split_seed)[split]
    if limit is not None:
        ids = ids[:limit]
    out = []
    for item in load_folder_pairs(
        images_dir, labels_dir, EMPS_NOMINAL_PIXEL_SIZE_NM, ids=ids, source="emps"
    ):
        label_path = next(
            (
                labels_dir / f"{item.image_id}{s}"
                for s in IMAGE_SUFFIXES
                if (labels_dir / f"{item.image_id}{s}").is_file()
            ),
            None,
        )
        if label_path is None:
            raise FileNotFoundError(f"no label map for EMPS image {item.image_id!r}")
        labels = np.asarray(imread(label_path))
        if labels.ndim == 3:
            labels = labels[..., 0]
        out.append(
            TruthImage(
                image=item.image,
                pixel_size_nm=item.pixel_size_nm,
                instances=instances_from_labels(labels),
                image_id=item.image_id,
                group="emps",
            )
        )
    return out


def _boxes(instances: Sequence[Instance]) -> np.ndarray:
    return np.array([i.bbox for i in instances], dtype=np.int64).reshape(-1, 4)


def _box_pairs(a: np.ndarray, b: np.ndarray, margin: int = 0) -> np.ndarray:
    """Index pairs (i, j) whose boxes intersect (grown by ``margin`` px)."""
    if not len(a) or not len(b):
        return np.zeros((0, 2), dtype=np.int64)
    hit = (
        (a[:, None, 0] < b[None, :, 2] + margin)
        & (b[None, :, 0] < a[:, None, 2] + margin)
        & (a[:, None, 1] < b[None, :, 3] + margin)
        & (b[None, :, 1] < a[:, None, 3] + margin)
    )
    return np.argwhere(hit)


def _window(first: Instance, second: Instance) -> tuple[np.ndarray, np.ndarray] | None:
    """Both masks cut to the intersection of their boxes, or None when it is empty."""
    a0, a1, a2, a3 = first.bbox
    b0, b1, b2, b3 = second.bbox
    r0, c0, r1, c1 = max(a0, b0), max(a1, b1), min(a2, b2), min(a3, b3)
    if r0 >= r1 or c0 >= c1:
        return None
    return (
        first.mask[r0 - a0 : r1 - a0, c0 - a1 : c1 - a1],
        second.mask[r0 - b0 : r1 - b0, c0 - b1 : c1 - b1],
    )


def iou_pairs(
    truth: Sequence[Instance], predicted: Sequence[Instance]
) -> list[tuple[int, int, float]]:
    """IoU of every (true, predicted) pair that shares at least one pixel.

    Returns
    -------
    list of (int, int, float)
        ``(truth index, predicted index, IoU)``.
    """
    t_area = [int(i.mask.sum()) for i in truth]
    p_area = [int(i.mask.sum()) for i in predicted]
    out = []
    for i, j in _box_pairs(_boxes(truth), _boxes(predicted)):
        window = _window(truth[i], predicted[j])
        if window is None:
            continue
        inter = int(np.count_nonzero(window[0] & window[1]))
        if inter:
            out.append((int(i), int(j), inter / (t_area[i] + p_area[j] - inter)))
    return out


def match_instances(
    pairs: Sequence[tuple[int, int, float]], threshold: float = MATCH_IOU
) -> dict[int, int]:
    """One-to-one matches ``{truth index: predicted index}``, greedy by decreasing IoU."""
    matched: dict[int, int] = {}
    used: set[int] = set()
    for i, j, iou in sorted(pairs, key=lambda pair: -pair[2]):
        if iou < threshold:
            break
        if i in matched or j in used:
            continue
        matched[i] = j
        used.add(j)
    return matched


def contact_pairs(instances: Sequence[Instance]) -> list[tuple[int, int]]:
    """Pairs of instances that overlap or touch (8-connected), i.e. need separating."""
    boxes = _boxes(instances)
    grow = ndimage.generate_binary_structure(2, 2)
    out = []
    for i, j in _box_pairs(boxes, boxes, margin=1):
        if i >= j:
            continue
        first, second = instances[i], instances[j]
        padded = Instance(
            ndimage.binary_dilation(np.pad(first.mask, 1), grow),
            (first.offset[0] - 1, first.offset[1] - 1),
        )
        window = _window(padded, second)
        if window is not None and np.any(window[0] & window[1]):
            out.append((int(i), int(j)))
    return out


def border_region_labels(union: np.ndarray) -> tuple[np.ndarray, set[int]]:
    """8-connected labels of a union mask and the labels of regions touching the border."""
    labels, _ = ndimage.label(union, structure=np.ones((3, 3), dtype=bool))
    edges = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return labels, {int(v) for v in np.unique(edges) if v}


def _in_border_region(instance: Instance, labels: np.ndarray, border: set[int]) -> bool:
    """Whether most of ``instance`` lies in border-touching regions of the true union."""
    if not border:
        return False
    r0, c0, r1, c1 = instance.bbox
    values = labels[r0:r1, c0:c1][instance.mask]
    return values.size > 0 and np.isin(values, list(border)).mean() > 0.5


def score_particles(
    truth: TruthImage, predicted: Sequence[Instance], predicted_diameters_nm: np.ndarray
) -> dict[str, Any]:
    """Raw counts and diameters of one image's measured particles against its truth.

    Parameters
    ----------
    truth : TruthImage
        The image and its true instances.
    predicted : sequence of Instance
        Measured particles (crops), aligned with ``predicted_diameters_nm``.
    predicted_diameters_nm : numpy.ndarray
        Equivalent diameters of the measured particles (nm).

    Returns
    -------
    dict
        ``n_truth, n_predicted, n_matched, n_pairs, n_pairs_split`` and arrays
        ``truth_diameters_nm, predicted_diameters_nm, matched_relative_errors``.
    """
    labels, border = border_region_labels(truth.mask)
    keep_t = [
        k for k, inst in enumerate(truth.instances) if not _in_border_region(inst, labels, border)
    ]
    keep_p = [k for k, inst in enumerate(predicted) if not _in_border_region(inst, labels, border)]
    t_instances = [truth.instances[k] for k in keep_t]
    p_instances = [predicted[k] for k in keep_p]
    p_diameters = np.asarray(predicted_diameters_nm, dtype=float)[keep_p]
    t_diameters = np.array(
        [2 * np.sqrt(i.mask.sum() / np.pi) * truth.pixel_size_nm for i in t_instances]
    )
    matches = match_instances(iou_pairs(t_instances, p_instances))
    pairs = contact_pairs(t_instances)
    split = sum(1 for i, j in pairs if i in matches and j in matches)
    relative = np.array(
        [(p_diameters[j] - t_diameters[i]) / t_diameters[i] for i, j in matches.items()]
    )
    return {
        "n_truth": len(t_instances),
        "n_predicted": len(p_instances),
        "n_matched": len(matches),
        "n_pairs": len(pairs),
        "n_pairs_split": split,
        "truth_diameters_nm": t_diameters,
        "predicted_diameters_nm": p_diameters,
        "matched_relative_errors": relative,
    }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _stat(values: np.ndarray, kind: str) -> float:
    if kind == "mean":
        return float(values.mean()) if values.size else float("nan")
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def summarise_scores(scores: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Instance, diameter and split metrics over the images of one group.

    Returns
    -------
    dict
        ``images, n_truth, n_predicted, n_matched, precision, recall, f1``,
        ``diameter_truth_mean_nm/std``, ``diameter_predicted_mean_nm/std``,
        ``diameter_mean_error_nm``, ``diameter_mean_relative_error``,
        ``diameter_std_error_nm``, ``matched_abs_relative_error`` (mean |error|/truth of
        matched particles), ``n_pairs``, ``n_pairs_split``, ``split_fraction``.
    """
    totals = {
        k: sum(s[k] for s in scores)
        for k in ("n_truth", "n_predicted", "n_matched", "n_pairs", "n_pairs_split")
    }
    cat = {
        k: np.concatenate([s[k] for s in scores]) if scores else np.array([])
        for k in ("truth_diameters_nm", "predicted_diameters_nm", "matched_relative_errors")
    }
    truth_mean = _stat(cat["truth_diameters_nm"], "mean")
    predicted_mean = _stat(cat["predicted_diameters_nm"], "mean")
    out: dict[str, float] = {"images": len(scores), **totals}
    out.update(
        precision=_ratio(totals["n_matched"], totals["n_predicted"]),
        recall=_ratio(totals["n_matched"], totals["n_truth"]),
        f1=_ratio(2 * totals["n_matched"], totals["n_truth"] + totals["n_predicted"]),
        diameter_truth_mean_nm=truth_mean,
        diameter_truth_std_nm=_stat(cat["truth_diameters_nm"], "std"),
        diameter_predicted_mean_nm=predicted_mean,
        diameter_predicted_std_nm=_stat(cat["predicted_diameters_nm"], "std"),
        diameter_mean_error_nm=predicted_mean - truth_mean,
        diameter_mean_relative_error=_ratio(predicted_mean - truth_mean, truth_mean),
        diameter_std_error_nm=_stat(cat["predicted_diameters_nm"], "std")
        - _stat(cat["truth_diameters_nm"], "std"),
        matched_abs_relative_error=_stat(np.abs(cat["matched_relative_errors"]), "mean"),
        split_fraction=_ratio(totals["n_pairs_split"], totals["n_pairs"]),
    )
    return out


def separation_options() -> dict[str, Any]:
    """Every separation mode of the package with the options it runs under."""
    from antema_scale.particles import AnalysisOptions
    from antema_scale.particles.analyze import SEPARATION_MODES

    return {
        mode: AnalysisOptions.paper() if mode == "uecs-paper" else AnalysisOptions(separation=mode)
        for mode in SEPARATION_MODES
    }


def measured_instances(table: Any) -> tuple[list[Instance], np.ndarray]:
    """Crops and equivalent diameters (nm) of a :class:`~antema_scale.particles.ParticleTable`."""
    crops = [Instance(np.asarray(c.mask, dtype=bool), tuple(c.offset)) for c in table.masks]
    return crops, table.particles["equivalent_diameter_nm"].to_numpy(dtype=float)


SegmentFunction = Callable[[Sequence[Any]], list[Any]]


def segmenters(model: Any | None, *, batch_size: int = 4) -> dict[str, SegmentFunction]:
    """The segment callables compared: ``model`` (when given) and ``threshold``."""
    from antema_scale.segment.evaluate import network_segmenter, threshold_segmenter

    out: dict[str, SegmentFunction] = {}
    if model is not None:
        out["model"] = network_segmenter(model, batch_size=batch_size)
    out["threshold"] = threshold_segmenter("otsu")
    return out


def accuracy_benchmark(
    images: Sequence[TruthImage],
    segment_functions: dict[str, SegmentFunction],
    *,
    modes: dict[str, Any] | None = None,
    include_truth_masks: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Pixel and particle metrics for every segmenter x separation mode x test group.

    Parameters
    ----------
    images : sequence of TruthImage
        Test images (their ``group`` names the rows).
    segment_functions : dict
        Name -> callable taking :class:`~antema_scale.segment.datasets.LabelledImage`
        lists and returning predictions (see :func:`segmenters`).
    modes : dict, optional
        Mode name -> :class:`~antema_scale.particles.AnalysisOptions` (default: every mode).
    include_truth_masks : bool
        Also analyse the true union masks (segmenter ``truth``).
    progress : callable, optional
        Called with a short message as work advances.

    Returns
    -------
    dict
        ``pixel``: rows ``segmenter, group, iou_particle, dice_particle, iou_background,
        global_accuracy, component_f1, images``; ``particles``: rows ``segmenter, mode,
        group`` + :func:`summarise_scores`; ``default_mode``.
    """
    from antema_scale.particles import AnalysisOptions, analyze_mask
    from antema_scale.segment.datasets import LabelledImage
    from antema_scale.segment.evaluate import evaluate

    modes = modes if modes is not None else separation_options()
    labelled = [
        LabelledImage(t.image, t.mask, t.pixel_size_nm, t.image_id, t.group) for t in images
    ]
    masks: dict[str, dict[str, np.ndarray]] = {}
    pixel_rows = []
    for name, function in segment_functions.items():
        if progress is not None:
            progress(f"segmenting {len(images)} images with {name}")
        kept: dict[str, np.ndarray] = {}

        def remembering(
            items: Sequence[Any],
            function: SegmentFunction = function,
            kept: dict[str, np.ndarray] = kept,
        ) -> list[Any]:
            predictions = function(items)
            for item, prediction in zip(items, predictions, strict=True):
                kept[item.image_id] = np.asarray(prediction.mask, dtype=bool)
            return predictions

        result = evaluate(remembering, labelled, chunk=2)
        masks[name] = kept
        for group, summary in result.summary.items():
            pixel_rows.append(
                {
                    "segmenter": name,
                    "group": group,
                    "images": summary["images"],
                    "iou_particle": summary["iou_particle"],
                    "dice_particle": summary["dice_particle"],
                    "iou_background": summary["iou_background"],
                    "global_accuracy": summary["global_accuracy"],
                    "component_f1": summary["instance_f1"],
                }
            )
    if include_truth_masks:
        masks = {"truth": {t.image_id: t.mask for t in images}, **masks}
    particle_rows = []
    groups = sorted({t.group for t in images})
    for name, by_image in masks.items():
        for mode, options in modes.items():
            if progress is not None:
                progress(f"separating {name} masks with {mode}")
            scores: dict[str, list[dict[str, Any]]] = {g: [] for g in groups}
            for truth in images:
                table = analyze_mask(by_image[truth.image_id], truth.pixel_size_nm, options=options)
                crops, diameters = measured_instances(table)
                scores[truth.group].append(score_particles(truth, crops, diameters))
            for group in groups:
                particle_rows.append(
                    {
                        "segmenter": name,
                        "mode": mode,
                        "group": group,
                        **summarise_scores(scores[group]),
                    }
                )
    return {
        "pixel": pixel_rows,
        "particles": particle_rows,
        "default_mode": AnalysisOptions().separation,
        "groups": groups,
        "images": {g: sum(1 for t in images if t.group == g) for g in groups},
    }
