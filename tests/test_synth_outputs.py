"""Synthetic movies, presets, file writers and the ``synth`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from antema_scale.synth import (
    SynthConfig,
    demo_images,
    generate_micrograph,
    generate_movie,
    random_config,
    read_particle_crops,
    write_dataset,
    write_demo_sample,
    write_micrograph,
    write_movie,
)
from antema_scale.synth.truth import union_mask

TINY = SynthConfig(image_size=96, pixel_size_nm=0.25, diameter_mean_nm=4.0, area_fraction=0.2)


def test_random_config_is_varied_and_valid() -> None:
    rng = np.random.default_rng(0)
    configs = [random_config(rng, image_size=64) for _ in range(60)]
    assert {c.mode for c in configs} == {"hrtem", "haadf"}
    pixel_sizes = [c.pixel_size_nm for c in configs]
    assert min(pixel_sizes) < 0.03 and max(pixel_sizes) > 0.8
    assert {str(c.overlap) for c in configs} >= {"none", "low", "medium", "high"}
    assert any(c.diameter_mean_nm < 2.5 and c.contrast < 1.0 for c in configs)  # ultrasmall, faint
    assert len({tuple(sorted(c.shapes)) for c in configs}) > 4
    for config in configs[:12]:
        mic = generate_micrograph(config, seed=1)
        assert np.isfinite(mic.image).all() and mic.image.shape == (64, 64)
    assert all(c.mode == "haadf" for c in (random_config(rng, mode="haadf") for _ in range(5)))


def test_movie_identities_events_and_determinism() -> None:
    config = TINY.with_(mode="haadf", image_size=128, diameter_spread=0.35)
    movie = generate_movie(
        config, 8, seed=3, ostwald_rate=0.08, appearance_rate=1.0, drift_nm_per_frame=(0.1, -0.05)
    )
    again = generate_movie(
        config, 8, seed=3, ostwald_rate=0.08, appearance_rate=1.0, drift_nm_per_frame=(0.1, -0.05)
    )
    assert movie.frames.shape == (8, 128, 128) and movie.frames.dtype == np.float32
    assert movie.frames.tobytes() == again.frames.tobytes()
    tracks = movie.tracks
    assert {"frame", "time_s", "particle_id", "area_nm2", "drift_y_nm"} <= set(tracks.columns)
    assert not tracks.duplicated(["frame", "particle_id"]).any()
    events = movie.events
    assert set(events["event"]) >= {"appearance"}
    for _, event in events.iterrows():
        seen = set(tracks.loc[tracks["frame"] == event.frame, "particle_id"])
        before = set(tracks.loc[tracks["frame"] == event.frame - 1, "particle_id"])
        if event.event == "appearance":
            assert event.particle_id not in before
        if event.event in ("disappearance",):
            assert event.particle_id not in seen
        if event.event == "coalescence":
            assert int(event.related_particle_ids) not in seen
    # Every frame's union mask is the union of its particles, and drift is cumulative.
    for mic in movie.micrographs:
        np.testing.assert_array_equal(mic.mask, union_mask(mic.particles, mic.mask.shape))
    np.testing.assert_allclose(movie.drift_nm[1] - movie.drift_nm[0], (0.1, -0.05), atol=0.2)


def test_ostwald_ripening_widens_the_size_gap() -> None:
    config = TINY.with_(image_size=160, diameter_spread=0.4, overlap="none")
    movie = generate_movie(
        config,
        12,
        seed=2,
        ostwald_rate=0.1,
        appearance_rate=0.0,
        approach_nm_per_frame=0.0,
        jitter_nm=0.0,
    )
    first = movie.tracks[movie.tracks["frame"] == 0].set_index("particle_id")["area_nm2"]
    last = movie.tracks[movie.tracks["frame"] == 11].set_index("particle_id")["area_nm2"]
    common = first.index.intersection(last.index)
    big = first[common] > first[common].median()
    assert (last[common][big] >= first[common][big]).mean() > 0.8
    assert len(last) < len(first)  # the smallest dissolved
    assert (movie.events["event"] == "disappearance").any()


def test_coalescence_merges_touching_particles() -> None:
    config = TINY.with_(image_size=128, overlap="high", area_fraction=0.3)
    movie = generate_movie(
        config, 10, seed=1, ostwald_rate=0.0, appearance_rate=0.0, approach_nm_per_frame=0.3
    )
    assert (movie.events["event"] == "coalescence").sum() >= 1


@pytest.mark.parametrize("mode", ["hrtem", "haadf"])
def test_written_files_read_back_with_pixel_size(mode: str, tmp_path: Path) -> None:
    io = pytest.importorskip("antema_scale.io")
    mic = generate_micrograph(TINY.with_(mode=mode, pixel_size_nm=0.137), seed=4)
    written = write_micrograph(mic, tmp_path, "one", formats=("h5", "tif", "zarr"))
    for kind in ("h5", "tif"):
        image = io.read_micrograph(written[kind])
        assert image.dims == ("y", "x")
        assert image.attrs["pixel_size_nm"] == pytest.approx(0.137, rel=1e-6)
        np.testing.assert_array_equal(np.asarray(image), mic.image)
    store = io.open_store(written["zarr"])
    assert store.pixel_size_nm("one") == pytest.approx((0.137, 0.137))
    np.testing.assert_array_equal(np.asarray(store.read_image("one")), mic.image)
    ids, crops = read_particle_crops(written["particles"])
    assert ids == list(mic.truth["particle_id"])
    for crop, original in zip(crops, mic.particles, strict=True):
        assert crop.offset == original.offset
        np.testing.assert_array_equal(crop.mask, original.mask)
    truth = pd.read_csv(written["truth"])
    np.testing.assert_allclose(truth["area_nm2"], mic.truth["area_nm2"])
    from skimage.io import imread

    np.testing.assert_array_equal(imread(written["mask"]) > 0, mic.mask)


def test_write_dataset_layout_and_index(tmp_path: Path) -> None:
    index = write_dataset(tmp_path, 3, seed=7, image_size=64, overlap="medium")
    assert list(index["mode"]) == ["hrtem", "haadf", "hrtem"]
    assert list(index["seed"]) == [7, 8, 9]
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert set(truth["image_id"]) <= set(index["image_id"])
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        f"{i}.h5" for i in index["image_id"]
    )
    assert sorted(p.stem for p in (tmp_path / "masks").iterdir()) == sorted(index["image_id"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["n_images"] == 3 and manifest["overlap"] == "medium"
    assert all(json.loads(c)["overlap"] == "medium" for c in index["config"])
    with pytest.raises(ValueError, match="image formats"):
        write_dataset(tmp_path, 1, formats=("png",))


def test_movie_files_read_back_as_a_stack(tmp_path: Path) -> None:
    io = pytest.importorskip("antema_scale.io")
    movie = generate_movie(TINY, 3, seed=0)
    written = write_movie(movie, tmp_path, "mv", formats=("h5", "tif"))
    for kind in ("h5", "tif"):
        stack = io.read_micrograph(written[kind])
        assert stack.dims == ("frame", "y", "x") and stack.shape == (3, 96, 96)
        assert stack.attrs["pixel_size_nm"] == pytest.approx(0.25)
    tracks = pd.read_csv(written["tracks"])
    assert set(tracks["frame"]) == {0, 1, 2}
    with np.load(written["masks"]) as data:
        np.testing.assert_array_equal(data["masks"], movie.masks)


def test_demo_sample_is_small_mixed_and_readable(tmp_path: Path) -> None:
    io = pytest.importorskip("antema_scale.io")
    images = demo_images()
    assert {mic.mode for _, mic in images} == {"hrtem", "haadf"}
    assert all(512 <= max(mic.image.shape) <= 1024 for _, mic in images)
    paths = write_demo_sample(tmp_path)
    assert len(paths) == 4
    for path, (_, mic) in zip(paths, images, strict=True):
        assert io.read_micrograph(path).attrs["pixel_size_nm"] == pytest.approx(mic.pixel_size_nm)
    # Nothing else in the folder is a micrograph format the analysis would pick up.
    others = [
        p for p in tmp_path.rglob("*") if p.is_file() and p.suffix.lower() in io.SUPPORTED_SUFFIXES
    ]
    assert sorted(others) == sorted(paths)


def test_synth_command_writes_images_and_movies(tmp_path: Path) -> None:
    from antema_scale.cli import app

    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "synth",
            "-o",
            str(tmp_path / "a"),
            "--n",
            "2",
            "--size",
            "64",
            "--pixel-size",
            "0.3",
            "--mode",
            "haadf",
            "--overlap",
            "high",
            "--formats",
            "h5,tif",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "a" / "images").glob("*.tif"))) == 2
    index = pd.read_csv(tmp_path / "a" / "images.csv")
    assert (index["pixel_size_nm"] == 0.3).all() and (index["mode"] == "haadf").all()
    result = runner.invoke(
        app,
        [
            "synth",
            "-o",
            str(tmp_path / "m"),
            "--n",
            "1",
            "--size",
            "64",
            "--movie",
            "--frames",
            "3",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "m" / "truth").glob("*_tracks.csv"))) == 1
    result = runner.invoke(
        app,
        [
            "synth",
            "-o",
            str(tmp_path / "b"),
            "--pixel-size",
            "0.3",
            "--shapes",
            "banana:1",
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "shapes must be" in result.output
    result = runner.invoke(app, ["synth", "-o", str(tmp_path / "c"), "--overlap", "huge"])
    assert result.exit_code != 0


def test_same_bytes_in_another_process() -> None:
    """Workers of a cluster must reproduce an image from its seed, whatever their hash seed."""
    import hashlib
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, numpy as np\n"
        "from antema_scale.synth import generate_micrograph, random_config\n"
        "m = generate_micrograph(random_config(np.random.default_rng([3, 1]), image_size=96), 1)\n"
        "print(hashlib.sha256(m.image.tobytes() + m.mask.tobytes()).hexdigest())\n"
    )
    here = generate_micrograph(random_config(np.random.default_rng([3, 1]), image_size=96), 1)
    expected = hashlib.sha256(here.image.tobytes() + here.mask.tobytes()).hexdigest()
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == expected


def test_config_round_trips_through_json() -> None:
    from antema_scale.synth import OverlapSpec

    for config in (
        random_config(np.random.default_rng(5), image_size=(64, 80)),
        TINY.with_(overlap=OverlapSpec(0.5, 0.1, 0.2), annotations=True, holes=0.2),
    ):
        again = SynthConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config
        assert (
            generate_micrograph(again, 3).image.tobytes()
            == generate_micrograph(config, 3).image.tobytes()
        )
    with pytest.raises(ValueError, match="unknown SynthConfig fields"):
        SynthConfig.from_dict({"colour": "blue"})
