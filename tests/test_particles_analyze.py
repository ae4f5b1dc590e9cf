"""analyze_mask end to end: cleaning in nm, border handling, edge cases, table API."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from test_particles_scenes import cluster_mask, disc_mask, draw_disc, pair_centres

from antema_scale.particles import AnalysisOptions, ParticleTable, analyze_mask
from antema_scale.particles.cleaning import clean_mask
from antema_scale.particles.table import EXCLUDED_COLUMNS, PARTICLE_COLUMNS


def _two_discs_and_speck(spacing: float, speck_nm: float) -> np.ndarray:
    size = int(math.ceil(12 / spacing))
    mask = np.zeros((size, 2 * size), dtype=bool)
    draw_disc(mask, (size / 2, size / 2), 3.0, (spacing, spacing))
    draw_disc(mask, (size / 2, 1.5 * size), 3.0, (spacing, spacing))
    draw_disc(mask, (size / 5, size), speck_nm / 2, (spacing, spacing))
    return mask


@pytest.mark.parametrize("spacing", [0.02, 0.05, 0.1])
def test_specks_below_half_a_nanometre_are_removed(spacing: float) -> None:
    small = analyze_mask(_two_discs_and_speck(spacing, 0.4), spacing)
    assert len(small) == 2
    large = analyze_mask(_two_discs_and_speck(spacing, 0.7), spacing)
    assert len(large) == 3
    assert large.particles.equivalent_diameter_nm.min() == pytest.approx(0.7, rel=0.1)


@pytest.mark.parametrize("spacing", [0.02, 0.05, 0.1])
def test_holes_below_half_a_nanometre_are_filled(spacing: float) -> None:
    mask = disc_mask(4.0, (spacing, spacing))
    centre = np.array(mask.shape) // 2
    hole = np.zeros_like(mask)
    draw_disc(hole, (centre[0] - 1.5 / spacing, centre[1]), 0.2, (spacing, spacing))  # 0.4 nm
    draw_disc(hole, (centre[0] + 1.5 / spacing, centre[1]), 0.4, (spacing, spacing))  # 0.8 nm
    table = analyze_mask(mask & ~hole, spacing)
    full_area = mask.sum() * spacing**2
    big_hole = math.pi * 0.4**2
    assert len(table) == 1
    assert table.particles.area_nm2.iloc[0] == pytest.approx(full_area - big_hole, rel=0.01)
    filled = analyze_mask(mask & ~hole, spacing, options=AnalysisOptions(fill_all_holes=True))
    assert filled.particles.area_nm2.iloc[0] == pytest.approx(full_area)
    # the outer perimeter ignores holes
    assert filled.particles.perimeter_nm.iloc[0] == pytest.approx(
        table.particles.perimeter_nm.iloc[0]
    )


def test_clean_mask_counts() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True
    mask[10, 10] = False  # 1 px hole
    mask[30, 30] = True  # 1 px speck
    cleaned = clean_mask(mask, (0.5, 0.5))  # one 0.5 nm pixel is a 0.56 nm disc: kept
    assert cleaned.specks_removed == 0 and cleaned.holes_filled == 0
    assert cleaned.holes_per_region.tolist() == [0, 1, 0]
    cleaned = clean_mask(mask, (0.2, 0.2))
    assert cleaned.specks_removed == 1 and cleaned.holes_filled == 1
    assert cleaned.holes_per_region[1] == 0


def test_border_particles_dropped_or_flagged() -> None:
    mask = np.zeros((60, 60), dtype=bool)
    draw_disc(mask, (30, 30), 8, (1.0, 1.0))
    draw_disc(mask, (3, 10), 6, (1.0, 1.0))  # cut by the top edge
    dropped = analyze_mask(mask, 0.5)
    assert len(dropped) == 1
    assert list(dropped.excluded.reason) == ["touches border"]
    assert dropped.excluded.bbox_min_row.iloc[0] == 0
    kept = analyze_mask(mask, 0.5, options=AnalysisOptions(border="keep"))
    assert len(kept) == 2
    assert kept.particles.touches_border.tolist() == [True, False]


def test_empty_mask() -> None:
    table = analyze_mask(np.zeros((64, 64), dtype=bool), 0.3, image_id="empty")
    assert len(table) == 0 and len(table.excluded) == 0
    assert list(table.particles.columns) == list(PARTICLE_COLUMNS)
    summary = table.summary()
    assert summary.loc["empty", "count"] == 0


def test_all_foreground_mask() -> None:
    mask = np.ones((50, 70), dtype=bool)
    dropped = analyze_mask(mask, 0.3)
    assert len(dropped) == 0 and list(dropped.excluded.reason) == ["touches border"]
    kept = analyze_mask(mask, 0.3, options=AnalysisOptions(border="keep"))
    assert len(kept) == 1
    row = kept.particles.iloc[0]
    assert row.area_nm2 == pytest.approx(50 * 70 * 0.09)
    assert row.min_feret_nm == pytest.approx(15.0) and row.touches_border


def test_huge_particle() -> None:
    mask = disc_mask(900.0, (1.0, 1.0), margin_px=3)
    table = analyze_mask(mask, 1.0)
    assert len(table) == 1
    assert table.particles.equivalent_diameter_nm.iloc[0] == pytest.approx(1800, rel=0.005)


def test_numeric_mask_accepted_and_bad_inputs_rejected() -> None:
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[5:12, 5:12] = 255
    assert len(analyze_mask(mask, 1.0)) == 1
    with pytest.raises(ValueError, match="2-D"):
        analyze_mask(np.zeros((2, 5, 5)), 1.0)
    with pytest.raises(ValueError, match="empty"):
        analyze_mask(np.zeros((0, 5)), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        analyze_mask(np.full((5, 5), np.nan), 1.0)
    with pytest.raises(ValueError, match="positive"):
        analyze_mask(mask, -0.1)
    with pytest.raises(ValueError, match="positive"):
        analyze_mask(mask, (0.1, float("nan")))
    with pytest.raises(ValueError, match="pair"):
        analyze_mask(mask, (0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="separation"):
        AnalysisOptions(separation="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="perimeter"):
        AnalysisOptions(perimeter="crofton")  # type: ignore[arg-type]


def test_table_pickles_and_analyze_mask_is_picklable() -> None:
    mask = cluster_mask(pair_centres(12.0, 0.2), 12.0)
    table = analyze_mask(mask, 0.25, image_id="img")
    clone = pickle.loads(pickle.dumps(table))
    pd.testing.assert_frame_equal(clone.particles, table.particles)
    assert all((a.mask == b.mask).all() for a, b in zip(clone.masks, table.masks, strict=True))
    function = pickle.loads(pickle.dumps(analyze_mask))
    options = pickle.loads(pickle.dumps(AnalysisOptions.paper()))
    again = function(mask, 0.25, options=options, image_id="img")
    assert again.particles.image_id.eq("img").all()


def test_masks_align_with_rows_and_paste_back() -> None:
    mask = cluster_mask(pair_centres(12.0, 0.1), 12.0)
    table = analyze_mask(mask, 1.0, image_id="a")
    for crop, row in zip(table.masks, table.particles.itertuples(), strict=True):
        assert crop.particle_id == row.particle_id and crop.image_id == "a"
        assert crop.mask.sum() == pytest.approx(row.area_nm2)
        assert crop.offset == (row.bbox_min_row, row.bbox_min_col)
        assert crop.mask.shape == (
            row.bbox_max_row - row.bbox_min_row,
            row.bbox_max_col - row.bbox_min_col,
        )
        assert not (crop.paste(mask.shape) & ~mask).any()


def test_summary_and_concat() -> None:
    first = analyze_mask(cluster_mask(pair_centres(12.0, 0.1), 12.0), 0.5, image_id="a")
    second = analyze_mask(disc_mask(5.0, (0.5, 0.5)), 0.5, image_id="b")
    empty = analyze_mask(np.zeros((10, 10), dtype=bool), 0.5, image_id="c")
    both = ParticleTable.concat([first, second, empty])
    assert len(both) == 3 and len(both.masks) == 3
    assert list(both.particles.columns) == list(PARTICLE_COLUMNS)
    assert list(both.excluded.columns) == list(EXCLUDED_COLUMNS)
    summary = both.summary()
    assert summary["count"].to_dict() == {"a": 2, "b": 1, "c": 0}
    diameters = first.particles.equivalent_diameter_nm
    assert summary.loc["a", "equivalent_diameter_nm_mean"] == pytest.approx(diameters.mean())
    assert summary.loc["a", "equivalent_diameter_nm_std"] == pytest.approx(diameters.std())
    assert math.isnan(summary.loc["b", "equivalent_diameter_nm_std"])
    for name in ("area_nm2", "min_feret_nm", "max_feret_nm", "circularity"):
        assert f"{name}_mean" in summary.columns and f"{name}_std" in summary.columns
    assert ParticleTable.concat([]).summary().empty


def test_particle_columns_types() -> None:
    table = analyze_mask(disc_mask(3.0, (0.2, 0.2)), 0.2, image_id="x")
    frame = table.particles
    assert frame.particle_id.dtype == np.int64 and frame.separated.dtype == bool
    assert frame.area_nm2.dtype == np.float64 and frame.image_id.iloc[0] == "x"
