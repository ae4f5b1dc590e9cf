"""Synthetic micrographs: truth agrees with the masks, knobs work, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label, regionprops

from antema_scale.particles.measure import measure_particle
from antema_scale.synth import (
    OverlapSpec,
    SynthConfig,
    feret_diameters,
    generate_micrograph,
    generate_scene,
)
from antema_scale.synth.layout import centre_distance_for_overlap, disc_intersection_area
from antema_scale.synth.truth import union_mask


def _brute_force_feret(mask: np.ndarray) -> tuple[float, float]:
    """Feret diameters (px) of the union of pixel squares from all corners, by brute force."""
    rows, cols = np.nonzero(mask)
    corners = np.concatenate(
        [np.column_stack([rows + dr, cols + dc]) for dr in (-0.5, 0.5) for dc in (-0.5, 0.5)]
    )
    diffs = corners[:, None, :] - corners[None, :, :]
    max_feret = float(np.sqrt((diffs**2).sum(-1)).max())
    angles = np.linspace(0.0, np.pi, 3_601)
    directions = np.column_stack([np.cos(angles), np.sin(angles)])
    projections = corners @ directions.T
    min_feret = float((projections.max(axis=0) - projections.min(axis=0)).min())
    return min_feret, max_feret


def crop_mask(mic: object, index: int) -> np.ndarray:
    return mic.particles[index].mask  # type: ignore[attr-defined]


SMALL = SynthConfig(image_size=160, pixel_size_nm=0.25, diameter_mean_nm=5.0, area_fraction=0.2)


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_image_and_truth_shapes(mode: str) -> None:
    mic = generate_micrograph(SMALL.with_(mode=mode), seed=3)
    assert mic.image.dtype == np.float32 and mic.image.shape == (160, 160)
    assert mic.mask.dtype == bool and mic.mask.shape == (160, 160)
    assert mic.pixel_size_nm == 0.25
    assert len(mic.particles) == len(mic.truth) > 5
    assert list(mic.truth["particle_id"]) == list(range(1, len(mic.truth) + 1))
    np.testing.assert_array_equal(mic.mask, union_mask(mic.particles, mic.mask.shape))


def test_truth_table_matches_regionprops_of_each_mask() -> None:
    cfg = SMALL.with_(
        shapes={
            "sphere": 1,
            "ellipsoid": 1,
            "cube": 1,
            "octahedron": 1,
            "rod": 1,
            "irregular": 1,
            "prism": 1,
        }
    )
    mic = generate_micrograph(cfg, seed=11)
    px = mic.pixel_size_nm
    for k, row in mic.truth.iterrows():
        full = mic.particle_mask(int(row.particle_id))
        (props,) = regionprops(full.astype(np.uint8))
        assert row.area_nm2 == pytest.approx(props.area * px**2)
        assert row.equivalent_diameter_nm == pytest.approx(props.equivalent_diameter_area * px)
        assert row.centroid_y_nm == pytest.approx(props.centroid[0] * px)
        assert row.centroid_x_nm == pytest.approx(props.centroid[1] * px)
        analysed = measure_particle(full, (0, 0), (px, px))
        for column in ("perimeter_nm", "circularity", "convexity", "min_feret_nm", "max_feret_nm"):
            assert row[column] == pytest.approx(analysed[column]), column
        min_feret, max_feret = _brute_force_feret(crop_mask(mic, k))
        assert row.max_feret_nm == pytest.approx(max_feret * px)
        assert row.min_feret_nm == pytest.approx(min_feret * px, rel=1e-3)
        assert (
            row.bbox_min_row,
            row.bbox_min_col,
            row.bbox_max_row,
            row.bbox_max_col,
        ) == props.bbox
        touches = full[0].any() or full[-1].any() or full[:, 0].any() or full[:, -1].any()
        assert row.touches_border == touches


def test_overlaps_column_matches_mask_intersections() -> None:
    mic = generate_micrograph(SMALL.with_(overlap="high"), seed=5)
    count = np.zeros(mic.mask.shape, int)
    for crop in mic.particles:
        r0, c0 = crop.offset
        h, w = crop.mask.shape
        count[r0 : r0 + h, c0 : c0 + w] += crop.mask
    for _, row in mic.truth.iterrows():
        full = mic.particle_mask(int(row.particle_id))
        assert row.overlaps == bool((count[full] > 1).any())
        assert row.overlap_area_nm2 >= (count[full] > 1).sum() * mic.pixel_size_nm**2 - 1e-9


def test_feret_of_known_shapes() -> None:
    square = np.ones((4, 4), bool)
    assert feret_diameters(square) == pytest.approx((4.0, np.hypot(4, 4)))
    bar = np.ones((1, 5), bool)
    assert feret_diameters(bar) == pytest.approx((1.0, np.hypot(1, 5)))
    single = np.ones((1, 1), bool)
    assert feret_diameters(single) == pytest.approx((1.0, np.sqrt(2)))


def test_overlap_knob_increases_overlap_fraction() -> None:
    cfg = SynthConfig(image_size=256, pixel_size_nm=0.3, diameter_mean_nm=6.0, area_fraction=0.15)
    fractions = {}
    for level in ("none", "low", "medium", "high"):
        values = [
            generate_micrograph(cfg.with_(overlap=level), seed=s).truth["overlaps"].mean()
            for s in range(3)
        ]
        fractions[level] = float(np.mean(values))
    assert fractions["none"] == 0.0
    assert fractions["none"] < fractions["low"] < fractions["medium"] < fractions["high"]


def test_explicit_overlap_spec_and_invalid_values() -> None:
    cfg = SMALL.with_(overlap=OverlapSpec(1.0, 0.3, 0.3))
    assert generate_micrograph(cfg, seed=0).truth["overlaps"].mean() > 0.5
    with pytest.raises(ValueError, match="overlap must be one of"):
        SynthConfig(overlap="huge")
    with pytest.raises(ValueError, match="mode must be one of"):
        SynthConfig(mode="sem")
    with pytest.raises(ValueError, match="pixel_size_nm must be a positive"):
        SynthConfig(pixel_size_nm=0)
    with pytest.raises(ValueError, match="shapes must be"):
        SynthConfig(shapes={"banana": 1.0})


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_same_seed_same_bytes_other_seed_differs(mode: str) -> None:
    cfg = SMALL.with_(mode=mode)
    a, b, c = (generate_micrograph(cfg, seed=s) for s in (7, 7, 8))
    assert a.image.tobytes() == b.image.tobytes()
    assert a.mask.tobytes() == b.mask.tobytes()
    assert a.truth.equals(b.truth)
    assert a.image.tobytes() != c.image.tobytes()


def test_border_particles_off_keeps_everything_inside() -> None:
    mic = generate_micrograph(SMALL.with_(border_particles=False, area_fraction=0.3), seed=2)
    assert not mic.truth["touches_border"].any()
    mic = generate_micrograph(SMALL.with_(border_particles=True, area_fraction=0.3), seed=2)
    assert mic.truth["touches_border"].any()


@pytest.mark.parametrize("kind", ["linear", "area"])
def test_pair_scene_has_the_requested_overlap(kind: str) -> None:
    cfg = SynthConfig(image_size=256, pixel_size_nm=0.05, mode="haadf")
    mic = generate_scene(cfg, "pair", seed=1, diameter_nm=5.0, overlap=0.25, overlap_kind=kind)
    assert len(mic.truth) == 2 and mic.truth["overlaps"].all()
    d = centre_distance_for_overlap(2.5, 2.5, 0.25, kind)
    expected_shared = disc_intersection_area(2.5, 2.5, d)
    shared = mic.truth["overlap_area_nm2"].iloc[0]
    assert shared == pytest.approx(expected_shared, rel=0.05)
    if kind == "area":
        assert shared / (np.pi * 2.5**2) == pytest.approx(0.25, rel=0.05)
    centres = mic.truth[["centroid_y_nm", "centroid_x_nm"]].to_numpy()
    assert np.hypot(*(centres[0] - centres[1])) == pytest.approx(d, abs=2 * cfg.pixel_size_nm)


@pytest.mark.parametrize("kind", ["chain", "cluster"])
def test_chain_and_cluster_scenes(kind: str) -> None:
    cfg = SynthConfig(image_size=200, pixel_size_nm=0.1)
    mic = generate_scene(cfg, kind, seed=4, n=5, diameter_nm=4.0, overlap=0.2)
    assert len(mic.truth) == 5
    assert mic.truth["overlaps"].all()
    assert len(label(mic.mask).ravel().nonzero()[0]) == mic.mask.sum()
    assert label(mic.mask).max() == 1


def test_empty_scene_has_an_empty_typed_truth_table() -> None:
    mic = generate_micrograph(SMALL.with_(n_particles=0), seed=0)
    assert len(mic.truth) == 0 and not mic.mask.any() and mic.particles == []
    assert mic.truth["area_nm2"].dtype == float and mic.truth["overlaps"].dtype == bool
    assert "solidity" in mic.truth.columns
    with pytest.raises(ValueError, match="image_size must be an int or"):
        SynthConfig(image_size=(5, 6, 7))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_support_hole_is_free_of_particles_and_changes_the_background(mode: str) -> None:
    cfg = SMALL.with_(mode=mode, holes=0.4, area_fraction=0.3, image_size=200)
    rng = np.random.default_rng(9)
    from antema_scale.synth.layout import draw_hole

    hole = draw_hole(cfg, rng)
    mic = generate_micrograph(cfg, seed=9)
    assert hole is not None
    rows, cols = np.mgrid[0:200, 0:200] * cfg.pixel_size_nm
    deep_inside = hole.contains(rows, cols, margin_nm=3.0)
    assert 0.2 < hole.contains(rows, cols).mean() < 0.6
    assert not mic.mask[deep_inside].any()
    film = ~hole.contains(rows, cols, margin_nm=-3.0) & ~mic.mask
    vacuum, support = mic.image[deep_inside].mean(), mic.image[film].mean()
    assert vacuum > support if mode == "hrtem" else vacuum < 0.5 * support


def test_annotations_are_burned_in_but_never_truth() -> None:
    from antema_scale.synth.annotations import scale_bar_length_nm, text_bitmap

    plain = generate_micrograph(SMALL.with_(image_size=256), seed=4)
    annotated = generate_micrograph(SMALL.with_(image_size=256, annotations=True), seed=4)
    np.testing.assert_array_equal(plain.mask, annotated.mask)
    assert plain.truth.equals(annotated.truth)
    changed = plain.image != annotated.image
    assert 0.002 < changed.mean() < 0.1
    assert scale_bar_length_nm(64.0) == 10.0 and scale_bar_length_nm(30.0) == 5.0
    assert scale_bar_length_nm(0.9) == pytest.approx(0.1)
    assert text_bitmap("10 nm", 2).shape == (10, 2 * (5 * 3 + 4))


def test_pairs_scene_puts_separate_pairs_on_a_grid() -> None:
    cfg = SynthConfig(image_size=384, pixel_size_nm=0.1, mode="hrtem")
    mic = generate_scene(cfg, "pairs", seed=2, n=9, diameter_nm=5.0, overlap=0.25)
    assert len(mic.truth) == 18 and mic.truth["overlaps"].all()
    assert (mic.truth["n_overlaps"] == 1).all()
    assert label(mic.mask).max() == 9
    with pytest.raises(ValueError, match="the 38.4 x 38.4 nm field holds 9"):
        generate_scene(cfg, "pairs", seed=2, n=50, diameter_nm=5.0)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_largest_images_generate_with_consistent_truth(mode: str) -> None:
    cfg = SynthConfig(
        mode=mode,
        image_size=4096,
        pixel_size_nm=0.33,
        diameter_mean_nm=10.0,
        area_fraction=0.4,
        arrangement="rafts",
        overlap="low",
    )
    mic = generate_micrograph(cfg, seed=1)
    assert mic.image.shape == (4096, 4096) and np.isfinite(mic.image).all()
    assert len(mic.particles) > 5000
    assert mic.truth["area_nm2"].sum() >= mic.mask.sum() * cfg.pixel_size_nm**2 - 1e-6
