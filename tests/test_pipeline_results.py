"""Per-image result files, resume keys and the merged tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from antema_scale.pipeline.results import (
    errors_frame,
    merge_image_results,
    read_image_result,
    result_file_name,
    result_path,
    stored_result_key,
    write_image_result,
)
from antema_scale.pipeline.settings import (
    PipelineOptionError,
    SegmentationSettings,
    parameter_hash,
    result_key,
)


def _particles(image_id: str, ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": image_id,
            "particle_id": ids,
            "equivalent_diameter_nm": [float(i) for i in ids],
        }
    )


def test_result_round_trip_keeps_table_summary_excluded_and_key(tmp_path: Path) -> None:
    particles = _particles("img-1", [1, 2])
    excluded = pd.DataFrame({"region_id": [7], "reason": ["convexity below 0.5"]})
    write_image_result(
        tmp_path, "img-1", "key-1", particles, {"image_id": "img-1", "n_particles": 2}, excluded
    )
    stored = read_image_result(tmp_path, "img-1")
    pd.testing.assert_frame_equal(stored.particles, particles)
    assert stored.image_row == {"image_id": "img-1", "n_particles": 2}
    assert stored.excluded.to_dict(orient="records") == [
        {"region_id": 7, "reason": "convexity below 0.5"}
    ]
    assert stored_result_key(tmp_path, "img-1") == "key-1"
    assert [p.name for p in (tmp_path / "per_image").iterdir()] == [result_file_name("img-1")]


def test_missing_or_broken_result_has_no_key(tmp_path: Path) -> None:
    assert stored_result_key(tmp_path, "absent") is None
    broken = result_path(tmp_path, "broken")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 truncated")
    assert stored_result_key(tmp_path, "broken") is None


def test_unsafe_image_ids_get_distinct_safe_file_names() -> None:
    names = {result_file_name(i) for i in ("a/b", "a_b", "a:b", "../x")}
    assert len(names) == 4
    assert all("/" not in name and not name.startswith(".") for name in names)


def test_merge_counts_each_image_once_and_sorts(tmp_path: Path) -> None:
    write_image_result(tmp_path, "b", "k", _particles("b", [2, 1]), {"image_id": "b"})
    write_image_result(tmp_path, "a", "k", _particles("a", [1]), {"image_id": "a"})
    write_image_result(
        tmp_path, "a", "k", _particles("a", [1]), {"image_id": "a"}
    )  # a retried task
    write_image_result(tmp_path, "empty", "k", _particles("empty", []), {"image_id": "empty"})
    merged = merge_image_results(tmp_path, ["b", "a", "empty", "a"])
    assert list(zip(merged.particles.image_id, merged.particles.particle_id, strict=True)) == [
        ("a", 1),
        ("b", 1),
        ("b", 2),
    ]
    assert list(merged.images.image_id) == ["a", "b", "empty"]


def test_errors_frame_has_fixed_columns_even_when_empty() -> None:
    assert list(errors_frame([]).columns) == [
        "image_id",
        "source",
        "stage",
        "error_type",
        "message",
    ]


def test_result_key_changes_with_image_parameters_and_model() -> None:
    base = result_key("img", "params", "model")
    assert (
        len(
            {
                base,
                result_key("img2", "params", "model"),
                result_key("img", "p2", "model"),
                result_key("img", "params", "m2"),
            }
        )
        == 4
    )


def test_parameter_hash_ignores_device_and_batching_but_not_segmenter() -> None:
    options = {"separation": "uecs", "convexity_threshold": 0.95}
    cpu = parameter_hash(
        SegmentationSettings(segmenter="threshold", device="cpu", batch_size=2), options
    )
    gpu = parameter_hash(
        SegmentationSettings(segmenter="threshold", device="cuda", batch_size=64), options
    )
    assert cpu == gpu
    assert cpu != parameter_hash(SegmentationSettings(segmenter="model", model_path=None), options)
    assert cpu != parameter_hash(
        SegmentationSettings(segmenter="threshold"), {**options, "separation": "watershed"}
    )


def test_parameter_hash_follows_scale_adaptation_of_the_network_only() -> None:
    options = {"separation": "uecs"}
    adapted = parameter_hash(SegmentationSettings(segmenter="model"), options)
    single = parameter_hash(
        SegmentationSettings(segmenter="model", scale_adaptation=False), options
    )
    assert adapted != single
    assert adapted != parameter_hash(SegmentationSettings(segmenter="model", flips=1), options)
    with pytest.raises(PipelineOptionError, match="flips must be 1, 2, 4 or 8"):
        SegmentationSettings(segmenter="model", flips=3)
    assert parameter_hash(SegmentationSettings(segmenter="threshold"), options) == parameter_hash(
        SegmentationSettings(segmenter="threshold", scale_adaptation=False), options
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segmenter": "otsu"}, "unknown segmenter 'otsu'"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"model_path": "/nonexistent/model.pt"}, "does not exist"),
    ],
)
def test_bad_segmentation_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(PipelineOptionError, match=message):
        SegmentationSettings(**kwargs)
