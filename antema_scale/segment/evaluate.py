"""Evaluation of a segmenter against labelled images (the paper's Table 1 and Fig. 8, more).

For every image the predicted mask is compared with the truth:

* pixel level: confusion matrix, global accuracy, per-class accuracy, IoU and Dice
  (accumulated over images, see :mod:`antema_scale.segment.metrics`);
* instance level: connected components matched one-to-one at IoU >= 0.5, giving
  precision, recall and F1 over particles;
* size: the equivalent circular diameters (nm) of the connected components of the truth
  and of the prediction, measured the same way (components touching the image border and
  specks below 0.5 nm removed, as the analysis does), and the error of their mean and
  standard deviation. Touching particles form one component in both, so this isolates the
  segmentation's effect on size from the separation step.

Results come per data source (``emps``, ``synth``, ...) and over all images;
:meth:`EvaluationResult.write` saves them with a Markdown table and figures
(:mod:`antema_scale.report.evaluation`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from skimage.measure import label, regionprops
from skimage.segmentation import clear_border

from antema_scale.segment.datasets import LabelledImage
from antema_scale.segment.inference import SCALE_ADAPTATION, Prediction, predict
from antema_scale.segment.metrics import confusion_matrix, instance_matches, pixel_metrics

__all__ = [
    "EvaluationResult",
    "component_diameters_nm",
    "diameter_table",
    "evaluate",
    "summarise",
]

#: Components with an equivalent diameter below this are specks, not particles (nm).
MIN_DIAMETER_NM = 0.5

#: Columns of :attr:`EvaluationResult.diameters`.
DIAMETER_COLUMNS = ("image_id", "source", "mask", "equivalent_diameter_nm")


@dataclass
class EvaluationResult:
    """Metrics of one evaluation run.

    Attributes
    ----------
    summary : dict
        ``{source: metrics}`` with ``"all"`` over every image (see :func:`summarise`).
    per_image : pandas.DataFrame
        One row per image: id, source, pixel counts, IoU, instance counts, diameters, quality.
    settings : dict
        How the evaluation was run (model, data, command).
    diameters : pandas.DataFrame
        One row per connected component measured: ``image_id``, ``source``, ``mask``
        (``"truth"`` or ``"predicted"``), ``equivalent_diameter_nm``.
    """

    summary: dict[str, dict[str, Any]]
    per_image: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    diameters: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(DIAMETER_COLUMNS))
    )

    def write(self, output_dir: str | Path, *, report: bool = True) -> list[Path]:
        """Write ``metrics.json`` and ``per_image.csv`` into ``output_dir``.

        With ``report`` (default) also ``metrics.md``, ``diameters.csv`` and the figures
        ``confusion_matrix`` and ``diameters`` (PNG and SVG), see
        :mod:`antema_scale.report.evaluation`. Returns the files written.
        """
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        metrics = out / "metrics.json"
        metrics.write_text(
            json.dumps(
                {"settings": self.settings, "summary": self.summary}, indent=2, default=_json
            )
        )
        table = out / "per_image.csv"
        self.per_image.to_csv(table, index=False)
        written = [metrics, table]
        if report:
            from antema_scale.report.evaluation import write_evaluation_report

            written += write_evaluation_report(self, out)
        return written


def _json(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value)}")


def component_diameters_nm(mask: np.ndarray, pixel_size_nm: float) -> np.ndarray:
    """Equivalent circular diameters (nm) of a mask's connected components.

    Components touching the image border and those smaller than
    :data:`MIN_DIAMETER_NM` are left out.
    """
    labels = clear_border(label(np.asarray(mask, dtype=bool), connectivity=2))
    diameters = np.array(
        [r.equivalent_diameter_area * pixel_size_nm for r in regionprops(labels)], dtype=float
    )
    return diameters[diameters >= MIN_DIAMETER_NM]


def _image_row(item: LabelledImage, pred: Prediction) -> tuple[dict[str, Any], np.ndarray, list]:
    if pred.mask.shape != item.mask.shape:
        raise ValueError(
            f"{item.image_id}: prediction {pred.mask.shape} and truth {item.mask.shape} differ"
        )
    cm = confusion_matrix(item.mask, pred.mask)
    n_t, n_p, matches = instance_matches(item.mask, pred.mask)
    d_true = component_diameters_nm(item.mask, item.pixel_size_nm)
    d_pred = component_diameters_nm(pred.mask, item.pixel_size_nm)
    row: dict[str, Any] = {
        "image_id": item.image_id,
        "source": item.source,
        "pixel_size_nm": item.pixel_size_nm,
        "height": item.mask.shape[0],
        "width": item.mask.shape[1],
        "tn": int(cm[0, 0]),
        "fp": int(cm[0, 1]),
        "fn": int(cm[1, 0]),
        "tp": int(cm[1, 1]),
        "iou_particle": pixel_metrics(cm)["iou_particle"],
        "n_truth": n_t,
        "n_predicted": n_p,
        "n_matched": len(matches),
        "diameter_truth_mean_nm": float(d_true.mean()) if d_true.size else np.nan,
        "diameter_pred_mean_nm": float(d_pred.mean()) if d_pred.size else np.nan,
    }
    row.update({f"quality_{k}": v for k, v in pred.quality.items()})
    return row, cm, [d_true, d_pred]


def summarise(
    rows: Sequence[dict[str, Any]], diameters: Sequence[tuple[np.ndarray, np.ndarray]]
) -> dict[str, Any]:
    """Aggregate per-image rows (and their diameter arrays) into one metrics dict.

    Returns
    -------
    dict
        Pixel metrics (:func:`antema_scale.segment.metrics.pixel_metrics`),
        ``confusion_matrix`` ``[[tn, fp], [fn, tp]]`` (pixels, rows = truth) and its
        row-normalised form, ``instance_precision``/``recall``/``f1`` at IoU >= 0.5,
        ``diameter_*`` statistics in nm, ``images`` count and ``out_of_distribution`` count.
    """
    cm = np.zeros((2, 2), dtype=np.int64)
    n_t = n_p = n_m = 0
    for row in rows:
        cm += np.array([[row["tn"], row["fp"]], [row["fn"], row["tp"]]], dtype=np.int64)
        n_t, n_p, n_m = n_t + row["n_truth"], n_p + row["n_predicted"], n_m + row["n_matched"]
    out: dict[str, Any] = {"images": len(rows), **pixel_metrics(cm)}
    out["confusion_matrix"] = cm.tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["confusion_matrix_normalised"] = (cm / cm.sum(axis=1, keepdims=True)).tolist()
    precision = n_m / n_p if n_p else float("nan")
    recall = n_m / n_t if n_t else float("nan")
    out.update(
        instance_truth=n_t,
        instance_predicted=n_p,
        instance_matched=n_m,
        instance_precision=precision,
        instance_recall=recall,
        instance_f1=2 * n_m / (n_t + n_p) if (n_t + n_p) else float("nan"),
    )
    d_true = np.concatenate([d[0] for d in diameters]) if diameters else np.array([])
    d_pred = np.concatenate([d[1] for d in diameters]) if diameters else np.array([])
    for name, values in (("truth", d_true), ("predicted", d_pred)):
        out[f"diameter_{name}_count"] = int(values.size)
        out[f"diameter_{name}_mean_nm"] = float(values.mean()) if values.size else float("nan")
        out[f"diameter_{name}_std_nm"] = (
            float(values.std(ddof=1)) if values.size > 1 else float("nan")
        )
    out["diameter_mean_error_nm"] = (
        out["diameter_predicted_mean_nm"] - out["diameter_truth_mean_nm"]
    )
    out["diameter_mean_relative_error"] = (
        out["diameter_mean_error_nm"] / out["diameter_truth_mean_nm"]
    )
    out["diameter_std_error_nm"] = out["diameter_predicted_std_nm"] - out["diameter_truth_std_nm"]
    flags = [bool(r.get("quality_out_of_distribution", False)) for r in rows]
    out["out_of_distribution"] = int(sum(flags))
    return out


def evaluate(
    segment: Callable[[Sequence[LabelledImage]], list[Prediction]],
    items: Iterable[LabelledImage],
    *,
    chunk: int = 8,
    progress: Callable[[int], None] | None = None,
    settings: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate a segmenter on labelled images.

    Parameters
    ----------
    segment : callable
        Takes a list of :class:`LabelledImage` and returns one :class:`Prediction` each
        (see :func:`network_segmenter` and :func:`threshold_segmenter`).
    items : iterable of LabelledImage
        The evaluation images (consumed in chunks of ``chunk``, so generators stay lazy).
    chunk : int
        Images per call of ``segment``.
    progress : callable, optional
        Called with the number of images done after each chunk.
    settings : dict, optional
        Recorded in the result (model, data, command).
    """
    rows: list[dict[str, Any]] = []
    diameters: list[tuple[np.ndarray, np.ndarray]] = []
    sources: list[str] = []
    batch: list[LabelledImage] = []

    def flush() -> None:
        for item, pred in zip(batch, segment(batch), strict=True):
            row, _, (d_t, d_p) = _image_row(item, pred)
            rows.append(row)
            diameters.append((d_t, d_p))
            sources.append(item.source)
        batch.clear()
        if progress is not None:
            progress(len(rows))

    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            flush()
    if batch:
        flush()
    summary = {"all": summarise(rows, diameters)}
    for source in sorted(set(sources)):
        idx = [i for i, s in enumerate(sources) if s == source]
        summary[source] = summarise([rows[i] for i in idx], [diameters[i] for i in idx])
    return EvaluationResult(
        summary, pd.DataFrame(rows), dict(settings or {}), diameter_table(rows, diameters)
    )


def diameter_table(
    rows: Sequence[dict[str, Any]], diameters: Sequence[tuple[np.ndarray, np.ndarray]]
) -> pd.DataFrame:
    """Per-component diameters of the images of ``rows`` as a long table (see
    :attr:`EvaluationResult.diameters`)."""
    frames = [
        pd.DataFrame(
            {
                "image_id": row["image_id"],
                "source": row["source"],
                "mask": kind,
                "equivalent_diameter_nm": np.asarray(values, dtype=float),
            }
        )
        for row, pair in zip(rows, diameters, strict=True)
        for kind, values in zip(("truth", "predicted"), pair, strict=True)
        if len(values)
    ]
    if not frames:
        return pd.DataFrame(columns=list(DIAMETER_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def network_segmenter(
    model: object,
    *,
    batch_size: int = 4,
    tile: int = 512,
    overlap: int = 64,
    target_diameter_px: float | None = SCALE_ADAPTATION["target_diameter_px"],
    max_refine_zoom: float = SCALE_ADAPTATION["max_refine_zoom"],
    flips: int = 8,
    precision: str = "auto",
) -> Callable[[Sequence[LabelledImage]], list[Prediction]]:
    """A ``segment`` callable for :func:`evaluate` that runs a :class:`SegmentationModel`.

    The keywords are those of :func:`antema_scale.segment.predict` (``target_diameter_px``
    ``None`` turns the scale adaptation off).
    """

    def segment(items: Sequence[LabelledImage]) -> list[Prediction]:
        return predict(
            model,  # type: ignore[arg-type]
            [i.image for i in items],
            [i.pixel_size_nm for i in items],
            batch_size=batch_size,
            tile=tile,
            overlap=overlap,
            target_diameter_px=target_diameter_px,
            max_refine_zoom=max_refine_zoom,
            flips=flips,
            precision=precision,
        )

    return segment


def threshold_segmenter(
    method: str = "otsu", sigma_px: float = 2.0
) -> Callable[[Sequence[LabelledImage]], list[Prediction]]:
    """A ``segment`` callable for :func:`evaluate` running the threshold baseline."""
    from antema_scale.segment.threshold import threshold_segment

    def segment(items: Sequence[LabelledImage]) -> list[Prediction]:
        return [
            threshold_segment(i.image, i.pixel_size_nm, method=method, sigma_px=sigma_px)
            for i in items
        ]

    return segment
