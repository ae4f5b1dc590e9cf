"""The evaluation report: metrics.md (Table 1), confusion matrices (Fig. 8), diameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from antema_scale.report.evaluation import (
    metrics_markdown,
    plot_confusion_matrices,
    plot_diameter_agreement,
)
from antema_scale.segment.datasets import LabelledImage
from antema_scale.segment.evaluate import evaluate
from antema_scale.segment.inference import Prediction

SUMMARY = {
    "all": {"images": 3, "iou_particle": 0.75, "confusion_matrix": [[90, 10], [8, 96]]},
    "emps": {"images": 1, "iou_particle": 0.7, "confusion_matrix": [[0, 0], [3, 1]]},
    "synth": {
        "images": 2,
        "iou_particle": 0.8,
        "dice_particle": 0.5,
        "confusion_matrix": [[90, 10], [5, 95]],
    },
}


def _texts(axis: object) -> list[str]:
    return [t.get_text() for t in axis.texts]  # type: ignore[attr-defined]


def test_metrics_markdown_has_a_column_per_source_in_order() -> None:
    lines = metrics_markdown(SUMMARY).splitlines()
    assert "| metric | all | emps | synth |" in lines
    assert "| IoU particle | 0.7500 | 0.7000 | 0.8000 |" in lines
    assert "| Dice particle | nan | nan | 0.5000 |" in lines  # missing metrics say so
    assert "| images | 3 | 1 | 2 |" in lines
    assert "| emps | background | 0 | 0 |" in lines


def test_metrics_markdown_writes_table_one_and_pixel_counts() -> None:
    text = metrics_markdown(
        {"synth": {"images": 2, "iou_particle": 0.8, "confusion_matrix": [[1234567, 10], [5, 95]]}},
        {"segmenter": "network", "split": "test", "model": "m.pt"},
    )
    lines = text.splitlines()
    assert "network on the test split." in lines
    assert "| IoU particle | 0.8000 |" in lines
    assert "| images | 2 |" in lines  # counts stay integers
    assert "| Dice particle | nan |" in lines
    assert "| synth | background | 1,234,567 | 10 |" in lines
    assert "| synth | particle | 5 | 95 |" in lines
    assert '"model": "m.pt"' in text


def test_confusion_matrices_are_normalised_by_true_class() -> None:
    figure = plot_confusion_matrices(SUMMARY)
    panels = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in panels] == [
        "emps (1 images)",
        "synth (2 images)",
        "all (3 images)",
    ]
    emps, synth, _ = panels
    assert _texts(synth) == ["90.0 %\n90 px", "10.0 %\n10 px", "5.0 %\n5 px", "95.0 %\n95 px"]
    # a true class without pixels is said so, the other row still sums to 100 %
    assert _texts(emps) == ["no pixels\n0 px", "no pixels\n0 px", "75.0 %\n3 px", "25.0 %\n1 px"]


def test_confusion_matrices_one_source_and_errors() -> None:
    one = plot_confusion_matrices({"all": SUMMARY["synth"], "synth": SUMMARY["synth"]})
    assert [a.get_title() for a in one.axes if a.get_title()] == ["synth (2 images)"]
    with pytest.raises(ValueError, match="no confusion matrix"):
        plot_confusion_matrices({"all": {"images": 0}})


def test_diameter_figure_says_no_data_for_a_source_without_components() -> None:
    per_image = pd.DataFrame(
        {
            "source": ["synth", "synth", "emps"],
            "diameter_truth_mean_nm": [2.0, 4.0, np.nan],
            "diameter_pred_mean_nm": [2.2, 3.8, np.nan],
        }
    )
    diameters = pd.DataFrame(
        {
            "source": "synth",
            "mask": ["truth", "truth", "predicted", "predicted"],
            "equivalent_diameter_nm": [2.0, 4.0, 2.2, 3.8],
        }
    )
    figure = plot_diameter_agreement(diameters, per_image)
    axes = np.array(figure.axes).reshape(2, 2)
    assert axes[0, 0].get_title() == "synth" and axes[0, 1].get_title() == "emps"
    legend = [t.get_text() for t in axes[0, 0].get_legend().get_texts()]
    assert legend == ["truth: 3.0 ± 1.4 nm (n = 2)", "predicted: 3.0 ± 1.1 nm (n = 2)"]
    assert axes[1, 0].get_title() == "one point per image (n = 2)"
    assert _texts(axes[0, 1]) == ["no data"] and _texts(axes[1, 1]) == ["no data"]
    with pytest.raises(ValueError, match="no images"):
        plot_diameter_agreement(diameters, per_image.iloc[:0])


def _disc_image(image_id: str, radii: list[float], pixel_size_nm: float) -> LabelledImage:
    rows, cols = np.mgrid[0:96, 0:96]
    mask = np.zeros((96, 96), dtype=bool)
    for i, radius in enumerate(radii):
        mask |= (rows - 20 - 28 * (i // 3)) ** 2 + (cols - 20 - 28 * (i % 3)) ** 2 <= radius**2
    return LabelledImage(mask.astype(np.float32), mask, pixel_size_nm, image_id, "synth")


def test_evaluation_writes_report_whose_diameters_match_the_summary(tmp_path: Path) -> None:
    items = [_disc_image("a", [5, 8, 10], 0.5), _disc_image("b", [6, 6, 7, 9], 0.25)]

    def eroded(batch: list[LabelledImage]) -> list[Prediction]:
        from scipy.ndimage import binary_erosion

        found = [binary_erosion(i.mask) for i in batch]
        return [Prediction(m, m.astype(np.float32), {}) for m in found]

    result = evaluate(eroded, items)
    written = result.write(tmp_path)
    names = {p.name for p in written}
    assert {"metrics.md", "diameters.csv", "confusion_matrix.png", "diameters.svg"} <= names
    assert all((tmp_path / name).stat().st_size > 0 for name in names)
    table = pd.read_csv(tmp_path / "diameters.csv")
    truth = table[table["mask"] == "truth"]
    summary = result.summary["synth"]
    assert len(truth) == summary["diameter_truth_count"] == 7
    assert truth.equivalent_diameter_nm.mean() == pytest.approx(summary["diameter_truth_mean_nm"])
    # the true discs of image "a" have diameters ~ 2 r x 0.5 nm
    assert np.sort(truth[truth.image_id == "a"].equivalent_diameter_nm.to_numpy()) == (
        pytest.approx([5.0, 8.0, 10.0], rel=0.06)
    )
    predicted = table[table["mask"] == "predicted"].equivalent_diameter_nm.mean()
    assert predicted < truth.equivalent_diameter_nm.mean()  # eroded outlines are smaller
    markdown = (tmp_path / "metrics.md").read_text()
    assert f"| IoU particle | {summary['iou_particle']:.4f} | {summary['iou_particle']:.4f} |" in (
        markdown
    )


def test_write_without_report_keeps_the_two_plain_files(tmp_path: Path) -> None:
    items = [_disc_image("a", [5, 8], 0.5)]
    result = evaluate(lambda b: [Prediction(i.mask, i.mask.astype(np.float32)) for i in b], items)
    written = result.write(tmp_path, report=False)
    assert [p.name for p in written] == ["metrics.json", "per_image.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "per_image.csv"]
