"""Accuracy scoring of the benchmark against hand-made truth (discs drawn on small grids)."""

from __future__ import annotations

import numpy as np
import pytest

from antema_scale.benchmark.accuracy import (
    Instance,
    TruthImage,
    accuracy_benchmark,
    contact_pairs,
    instances_from_labels,
    iou_pairs,
    match_instances,
    score_particles,
    summarise_scores,
)

SHAPE = (80, 120)


def disc(centre: tuple[float, float], radius: float, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def crop(mask: np.ndarray) -> Instance:
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return Instance(mask[r0:r1, c0:c1], (int(r0), int(c0)))


def full_iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def truth_image(masks: list[np.ndarray], pixel_size_nm: float = 0.5) -> TruthImage:
    return TruthImage(
        image=np.zeros(SHAPE, dtype=np.float32),
        pixel_size_nm=pixel_size_nm,
        instances=[crop(m) for m in masks],
        image_id="test",
        group="g",
    )


def test_iou_pairs_equal_full_frame_iou() -> None:
    a, b, c = disc((40, 30), 12), disc((40, 48), 12), disc((40, 100), 8)
    pairs = iou_pairs([crop(a), crop(b)], [crop(b), crop(a | b), crop(c)])
    got = {(i, j): iou for i, j, iou in pairs}
    assert set(got) == {(0, 0), (0, 1), (1, 0), (1, 1)}  # c shares no pixel with a or b
    assert got[(1, 0)] == pytest.approx(1.0)
    assert got[(0, 0)] == pytest.approx(full_iou(a, b))
    assert got[(0, 1)] == pytest.approx(full_iou(a, a | b))
    assert got[(1, 1)] == pytest.approx(full_iou(b, a | b))


def test_match_instances_is_one_to_one_and_greedy() -> None:
    pairs = [(0, 0, 0.6), (1, 0, 0.9), (1, 1, 0.7), (2, 2, 0.4)]
    assert match_instances(pairs) == {1: 0}  # 0 loses predicted 0 to the better IoU; 2 below 0.5
    assert match_instances([(0, 0, 0.5)]) == {0: 0}


def test_contact_pairs_count_overlap_and_touch_not_gaps() -> None:
    left = np.zeros(SHAPE, dtype=bool)
    left[10:20, 10:20] = True
    diagonal = np.zeros(SHAPE, dtype=bool)
    diagonal[20:30, 20:30] = True  # touches ``left`` at one corner (8-connected)
    overlapping = np.zeros(SHAPE, dtype=bool)
    overlapping[25:35, 25:35] = True
    apart = np.zeros(SHAPE, dtype=bool)
    apart[10:17, 22:30] = True  # background between it and ``left`` and ``diagonal``
    pairs = contact_pairs([crop(m) for m in (left, diagonal, overlapping, apart)])
    assert sorted(pairs) == [(0, 1), (1, 2)]


def test_exact_separation_scores_perfectly() -> None:
    a, b = disc((40, 40), 12), disc((40, 58), 12)  # overlapping pair (linear overlap 25 %)
    truth = truth_image([a, b])
    diameters = np.array([2 * np.sqrt(m.sum() / np.pi) * 0.5 for m in (a, b)])
    score = score_particles(truth, [crop(a), crop(b)], diameters)
    summary = summarise_scores([score])
    assert (summary["n_truth"], summary["n_predicted"], summary["n_matched"]) == (2, 2, 2)
    assert summary["f1"] == 1.0
    assert (summary["n_pairs"], summary["n_pairs_split"], summary["split_fraction"]) == (1, 1, 1.0)
    assert summary["diameter_mean_error_nm"] == pytest.approx(0.0)
    assert summary["matched_abs_relative_error"] == pytest.approx(0.0)


def test_unsplit_pair_counts_as_not_split() -> None:
    a, b = disc((40, 40), 12), disc((40, 58), 12)
    union = a | b
    truth = truth_image([a, b])
    d_union = 2 * np.sqrt(union.sum() / np.pi) * 0.5
    summary = summarise_scores([score_particles(truth, [crop(union)], np.array([d_union]))])
    expected_matches = int(max(full_iou(a, union), full_iou(b, union)) >= 0.5)
    assert summary["n_matched"] == expected_matches
    assert summary["split_fraction"] == 0.0
    true_mean = np.mean([2 * np.sqrt(m.sum() / np.pi) * 0.5 for m in (a, b)])
    assert summary["diameter_mean_error_nm"] == pytest.approx(d_union - true_mean)
    assert summary["recall"] == pytest.approx(expected_matches / 2)


def test_regions_touching_the_border_are_left_out_on_both_sides() -> None:
    inside, cut = disc((40, 60), 10), disc((40, 3), 10)
    truth = truth_image([inside, cut])
    score = score_particles(truth, [crop(inside), crop(cut)], np.array([10.0, 10.0]))
    assert (score["n_truth"], score["n_predicted"], score["n_matched"]) == (1, 1, 1)


def test_instances_from_labels_round_trip() -> None:
    labels = np.zeros(SHAPE, dtype=np.uint16)
    labels[disc((20, 20), 6)] = 3
    labels[disc((50, 80), 9)] = 7
    instances = instances_from_labels(labels)
    assert len(instances) == 2
    union = np.zeros(SHAPE, dtype=bool)
    for inst in instances:
        r0, c0, r1, c1 = inst.bbox
        union[r0:r1, c0:c1] |= inst.mask
    np.testing.assert_array_equal(union, labels > 0)
    assert sorted(int(i.mask.sum()) for i in instances) == sorted(
        [int((labels == 3).sum()), int((labels == 7).sum())]
    )


def test_accuracy_benchmark_on_true_masks_of_isolated_discs() -> None:
    from antema_scale.particles import AnalysisOptions

    masks = [disc((20, 20), 8), disc((50, 60), 10), disc((25, 95), 9)]
    image = truth_image(masks, pixel_size_nm=0.5)
    modes = {"none": AnalysisOptions(separation="none"), "uecs-paper": AnalysisOptions.paper()}
    result = accuracy_benchmark([image], {}, modes=modes)
    assert result["pixel"] == []
    rows = {(r["segmenter"], r["mode"]): r for r in result["particles"]}
    assert set(rows) == {("truth", "none"), ("truth", "uecs-paper")}
    for row in rows.values():
        assert (row["n_truth"], row["n_predicted"], row["n_matched"]) == (3, 3, 3)
        assert row["f1"] == 1.0
        assert abs(row["diameter_mean_error_nm"]) < 0.05  # contour vs pixel-count area
    assert result["groups"] == ["g"] and result["images"] == {"g": 1}
