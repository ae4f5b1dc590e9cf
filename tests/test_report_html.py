"""The self-contained HTML report, the directory-level entry points and the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from test_report_synthetic import SyntheticRun, build_results_dir
from typer.testing import CliRunner

from antema_scale.cli import app
from antema_scale.report import ResultsDirectoryError, load_results, report_run, write_report
from antema_scale.report.micrograph_figures import ImageRecord
from antema_scale.report.results import analysis_options_from_manifest, recompute_particle_crops


@pytest.fixture()
def synthetic_run(tmp_path: Path) -> SyntheticRun:
    return build_results_dir(tmp_path)


class _ResourceCollector(HTMLParser):
    """Collects every src/href attribute and <link>/<script> element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str, str]] = []
        self.elements: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.references.append((tag, name, value))


def _collect(page: str) -> _ResourceCollector:
    collector = _ResourceCollector()
    collector.feed(page)
    return collector


def test_report_is_self_contained_and_complete(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    out = write_report(
        synthetic_run.results_dir,
        tmp_path / "report.html",
        image_loader=synthetic_run.load_image,
        n_resamples=200,
    )
    page = out.read_text(encoding="utf-8")
    collector = _collect(page)
    for tag, name, value in collector.references:
        # nothing is fetched: images are data URIs, links are in-page anchors
        assert value.startswith(("data:image/", "#")), (tag, name, value[:80])
    assert "link" not in collector.elements and "script" not in collector.elements
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    images = [value for tag, _, value in collector.references if tag == "img"]
    # size (all), size by sample, shape, gallery, 2 per-image overviews
    assert len(images) == 6
    assert sum(value.startswith("data:image/svg+xml;base64,") for value in images) == 3
    for heading in (
        "Summary",
        "Statistics by sample",
        "Distributions",
        "Images",
        "Errors",
        "Run manifest",
    ):
        assert f">{heading}</h2>" in page
    # numbers a reader needs are in the page
    diameters = synthetic_run.particles["equivalent_diameter_nm"]
    assert f"{diameters.mean():.1f} ± {diameters.std(ddof=1):.1f} nm" in page
    assert "EU nanomaterial criterion" in page and "100.0%" in page
    assert "CorruptFileError" in page and "truncated DM3 tag directory" in page
    assert "deeplabv3plus-resnet18" in page and "convexity_threshold" in page
    assert "gold-A" in page and "gold-B" in page
    assert (
        "/data/gold-A/img-a.dm3; 320 × 240 px at 0.5 × 0.5 nm/px; 14 particles measured, 2 from separation"
        in page
    )
    figures = tmp_path / "report_figures"
    assert (figures / "size_distributions.svg").stat().st_size > 0
    assert (figures / "images" / "img-a.png").stat().st_size > 0


def test_report_without_store_or_optional_files_notes_what_is_missing(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    for name in ("manifest.json", "errors.parquet", "images.parquet"):
        (synthetic_run.results_dir / name).unlink()
    out = write_report(synthetic_run.results_dir, tmp_path / "r.html", n_resamples=50)
    page = out.read_text(encoding="utf-8")
    assert "No image store (store.zarr)" in page
    assert "manifest.json is missing" in page
    assert "No errors table was written." in page
    # no sources -> one sample; size + shape figures only (no store: no gallery, no images)
    assert len([1 for tag, _, _ in _collect(page).references if tag == "img"]) == 2


def test_report_reads_images_and_masks_from_the_run_store(
    synthetic_run: SyntheticRun, tmp_path: Path
) -> None:
    import xarray as xr

    from antema_scale.io import create_store, write_image

    store_path = synthetic_run.results_dir / "store.zarr"
    store = create_store(store_path)
    for image_id, record in synthetic_run.records.items():
        image = xr.DataArray(
            record.image,
            dims=("y", "x"),
            attrs={
                "pixel_size_nm_y": 0.5,
                "pixel_size_nm_x": 0.5,
                "pixel_size_nm": 0.5,
                "source": image_id,
            },
        )
        write_image(store_path, image, image_id)
    store.write_mask("img-a", synthetic_run.records["img-a"].mask)  # img-b: mask not written
    frames = np.stack([synthetic_run.records["img-b"].image] * 3)
    movie = xr.DataArray(
        frames,
        dims=("frame", "y", "x"),
        attrs={"pixel_size_nm_y": 0.5, "pixel_size_nm_x": 0.5, "pixel_size_nm": 0.5},
    )
    write_image(store_path, movie, "movie")

    run = load_results(synthetic_run.results_dir)
    record_a = run.load_image("img-a")
    assert record_a is not None and record_a.pixel_size_nm == (0.5, 0.5)
    np.testing.assert_array_equal(record_a.mask, synthetic_run.records["img-a"].mask)
    np.testing.assert_allclose(record_a.image, synthetic_run.records["img-a"].image)
    record_b = run.load_image("img-b")
    assert record_b is not None and record_b.mask is None
    movie_record = run.load_image("movie")
    assert (
        movie_record is not None
        and movie_record.n_frames == 3
        and movie_record.image.shape == (240, 320)
    )
    assert run.load_image("unknown") is None
    assert any("unknown" in note for note in run.notes)

    page = write_report(
        synthetic_run.results_dir, tmp_path / "r.html", n_resamples=50, max_image_figures=1
    ).read_text(encoding="utf-8")
    assert page.count('alt="img-') == 1
    assert "Per-image figures are drawn for the first 1 of 2 images" in page
    # the fixture's table was not made by analyze_mask: what does not match is noted
    assert "Outlines of img-a: " in page
    assert (tmp_path / "r_figures" / "particle_gallery.png").stat().st_size > 0


def test_particle_crops_are_recomputed_from_the_stored_mask(synthetic_run: SyntheticRun) -> None:
    from antema_scale.particles import AnalysisOptions, analyze_mask

    record = synthetic_run.records["img-a"]
    table = analyze_mask(record.mask, record.pixel_size_nm, image_id="img-a")
    assert table.particles["separated"].any()
    bare = ImageRecord("img-a", record.image, record.pixel_size_nm, mask=record.mask)
    crops, unmatched = recompute_particle_crops(
        bare, table.particles, analysis_options_from_manifest(None)
    )
    assert unmatched == 0
    assert set(crops) == set(table.particles["particle_id"])
    for crop in table.masks:
        mask, offset = crops[int(crop.particle_id)]
        np.testing.assert_array_equal(mask, crop.mask)
        assert offset == tuple(crop.offset)
    moved = table.particles.copy()
    moved.loc[moved.index[0], "area_nm2"] *= 1.1  # this particle no longer matches
    crops, unmatched = recompute_particle_crops(bare, moved, AnalysisOptions())
    assert unmatched == 1 and int(moved["particle_id"].iloc[0]) not in crops
    moved["centroid_x_nm"] += 5.0  # nothing matches
    with pytest.raises(ValueError, match="matches none"):
        recompute_particle_crops(bare, moved, AnalysisOptions())
    manifest = {"parameters": {"analysis": {"separation": "watershed", "border": "keep"}}}
    assert analysis_options_from_manifest(manifest).separation == "watershed"


def test_missing_or_empty_results_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsDirectoryError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    with pytest.raises(ResultsDirectoryError, match="has no particles.parquet"):
        load_results(tmp_path)
    (tmp_path / "particles.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsDirectoryError, match="not a readable Parquet"):
        load_results(tmp_path)


def test_report_of_a_run_without_particles(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    empty = synthetic_run.particles.iloc[:0]
    empty.to_parquet(synthetic_run.results_dir / "particles.parquet", index=False)
    page = write_report(synthetic_run.results_dir, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "No particles were measured." in page


def test_report_run_writes_tables_and_html_for_analyze(synthetic_run: SyntheticRun) -> None:
    written = report_run(synthetic_run.results_dir)
    assert set(written) == {"csv", "xlsx", "html"}
    assert written["html"] == synthetic_run.results_dir / "report.html"
    assert "MeanValues" in openpyxl.load_workbook(written["xlsx"], read_only=True).sheetnames


def test_cli_report_command(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    mapping = tmp_path / "samples.csv"
    mapping.write_text("image_id,sample\nimg-a,batch-7\nimg-b,batch-7\n", encoding="utf-8")
    out = tmp_path / "cli" / "report.html"
    result = CliRunner().invoke(
        app,
        [
            "report",
            str(synthetic_run.results_dir),
            "-o",
            str(out),
            "--samples",
            str(mapping),
            "--bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "batch-7" in out.read_text(encoding="utf-8")
    sheet = openpyxl.load_workbook(tmp_path / "cli" / "particles.xlsx", read_only=True)["PerSample"]
    assert {row[0] for row in list(sheet.values)[1:]} == {"batch-7"}

    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


def chromium_executable() -> str | None:
    """The headless Chromium used for screenshots, if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_screenshot(
    html_path: Path, png_path: Path, profile_dir: Path, *, height: int = 4000
) -> Path:
    """Render a page in headless Chromium (no network use) and save a 1280-px-wide PNG."""
    executable = chromium_executable()
    if executable is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    command = [
        executable,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile_dir}",
        f"--screenshot={png_path}",
        f"--window-size=1280,{height}",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(profile_dir)},
    )
    return png_path


@pytest.mark.slow
def test_report_renders_in_headless_chromium(synthetic_run: SyntheticRun, tmp_path: Path) -> None:
    if chromium_executable() is None:
        pytest.skip("chromium is not installed")
    from matplotlib.image import imread

    out = write_report(
        synthetic_run.results_dir, tmp_path / "report.html", image_loader=synthetic_run.load_image
    )
    png = render_screenshot(out, tmp_path / "shot.png", tmp_path / "profile")
    pixels = imread(png)
    assert pixels.shape[:2] == (4000, 1280)
    # the page is drawn: a dark header band at the top, varied content below it
    assert pixels[:40, :, :3].mean() < 0.3
    assert pixels[200:3800, :, :3].std() > 0.1
    assert np.mean(pixels[200:3800, :, :3] < 0.5) > 0.02  # text, plots and micrographs
