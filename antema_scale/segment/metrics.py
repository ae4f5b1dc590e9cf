"""Segmentation metrics: confusion matrix, accuracy, IoU, Dice, instance matching.

Pixel metrics follow the paper's Table 1: global accuracy, per-class accuracy, IoU and
Dice for ``background`` (class 0) and ``particle`` (class 1), from a 2 x 2 confusion matrix
``cm[true, predicted]`` in pixel counts (accumulated over images, i.e. micro-averaged).

Instance metrics: connected components of truth and prediction are matched one-to-one
when their IoU is >= 0.5 (at that threshold a match is necessarily unique), giving
precision, recall and F1 over particles.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "CLASS_NAMES",
    "confusion_matrix",
    "instance_matches",
    "pixel_metrics",
]

#: Class names by index.
CLASS_NAMES = ("background", "particle")


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """2 x 2 confusion matrix ``cm[true, predicted]`` (int64 pixel counts) of two masks."""
    truth = np.asarray(truth, dtype=bool)
    predicted = np.asarray(predicted, dtype=bool)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    index = truth.ravel().astype(np.int64) * 2 + predicted.ravel().astype(np.int64)
    return np.bincount(index, minlength=4).reshape(2, 2).astype(np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def pixel_metrics(cm: np.ndarray) -> dict[str, float]:
    """Global accuracy, class accuracy, IoU and Dice per class from a confusion matrix.

    Returns
    -------
    dict
        ``global_accuracy``, ``mean_accuracy``, ``mean_iou``, and per class ``c``:
        ``accuracy_c`` (recall of class c), ``iou_c``, ``dice_c``; all fractions in 0..1
        (NaN where a class is absent from both truth and prediction).
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    out: dict[str, float] = {"global_accuracy": _ratio(np.trace(cm), total)}
    accs, ious = [], []
    for k, name in enumerate(CLASS_NAMES):
        tp = cm[k, k]
        fn = cm[k, :].sum() - tp
        fp = cm[:, k].sum() - tp
        out[f"accuracy_{name}"] = _ratio(tp, tp + fn)
        out[f"iou_{name}"] = _ratio(tp, tp + fp + fn)
        out[f"dice_{name}"] = _ratio(2 * tp, 2 * tp + fp + fn)
        accs.append(out[f"accuracy_{name}"])
        ious.append(out[f"iou_{name}"])
    out["mean_accuracy"] = float(np.nanmean(accs)) if not np.all(np.isnan(accs)) else float("nan")
    out["mean_iou"] = float(np.nanmean(ious)) if not np.all(np.isnan(ious)) else float("nan")
    return out


def instance_matches(
    truth: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5
) -> tuple[int, int, list[tuple[int, int, float]]]:
    """Match connected components of two masks one-to-one at ``IoU >= iou_threshold``.

    Parameters
    ----------
    truth, predicted : numpy.ndarray
        Boolean masks, or integer label images (0 = background) used as given.
    iou_threshold : float
        Minimum IoU of a match; must be >= 0.5 so that matches are unique.

    Returns
    -------
    n_truth, n_predicted : int
        Number of instances in each.
    matches : list of (truth_label, predicted_label, iou)
        Matched pairs.
    """
    if iou_threshold < 0.5:
        raise ValueError("iou_threshold must be >= 0.5 for one-to-one matching")
    t_lab = _labels(truth)
    p_lab = _labels(predicted)
    if t_lab.shape != p_lab.shape:
        raise ValueError(f"truth {t_lab.shape} and prediction {p_lab.shape} differ in shape")
    n_t, n_p = int(t_lab.max(initial=0)), int(p_lab.max(initial=0))
    t_area = np.bincount(t_lab.ravel(), minlength=n_t + 1)
    p_area = np.bincount(p_lab.ravel(), minlength=n_p + 1)
    both = (t_lab > 0) & (p_lab > 0)
    pair = t_lab[both].astype(np.int64) * (n_p + 1) + p_lab[both]
    keys, inter = np.unique(pair, return_counts=True)
    matches = []
    for key, n in zip(keys, inter, strict=True):
        t, p = divmod(int(key), n_p + 1)
        iou = n / (t_area[t] + p_area[p] - n)
        if iou >= iou_threshold:
            matches.append((t, p, float(iou)))
    return n_t, n_p, matches


def _labels(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return ndimage.label(mask)[0]
    return mask.astype(np.int64)
