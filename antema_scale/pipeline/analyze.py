"""``antema_scale.analyze``: many micrographs in, one particle table out, on any Dask cluster.

One run:

1. connect to (or start) a cluster (:mod:`antema_scale.pipeline.cluster`) and register the
   segmenter plugin (one model per worker process);
2. hash the input files (unless the input already is an ingested store); files already in
   ``<output_dir>/store.zarr`` are not read again, unreadable files become error rows;
3. for each image compute its result key (image sha256 + parameter hash + model sha256);
   images whose ``per_image/`` file carries that key are reused, the others go through the
   graph (:mod:`antema_scale.pipeline.graph`): ingest of new files into the store (streamed:
   an image is segmented as soon as it is stored), segmentation (masks written back into
   the store) then cleaning, separation and measurement, each image's result written
   atomically;
4. merge: ``particles.parquet``, ``images.parquet``, ``excluded.parquet``,
   ``errors.parquet`` + ``errors.csv``, optional csv/xlsx tables, ``manifest.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from antema_scale.pipeline.cluster import (
    ClusterSpec,
    cluster_description,
    connect,
    gpu_resource_available,
)
from antema_scale.pipeline.graph import GraphOptions, GraphRun, IngestFeed, run_graph
from antema_scale.pipeline.manifest import build_manifest, utc_now, write_manifest
from antema_scale.pipeline.model_plugin import SegmenterPlugin
from antema_scale.pipeline.results import (
    ERROR_COLUMNS,
    errors_frame,
    merge_image_results,
    stored_result_key,
    write_parquet_atomically,
)
from antema_scale.pipeline.segmenters import SegmenterSpec
from antema_scale.pipeline.settings import (
    PipelineOptionError,
    SegmentationSettings,
    options_as_dict,
    parameter_hash,
    result_key,
)
from antema_scale.pipeline.store_access import StoreEntries, plan_store, store_image_of
from antema_scale.pipeline.tasks import ImageOutcome, ImageWork, RunContext

if TYPE_CHECKING:
    from distributed import Client

#: Table formats besides Parquet that ``table_formats`` accepts.
EXTRA_TABLE_FORMATS: tuple[str, ...] = ("csv", "xlsx")

ProgressCallback = Callable[[ImageOutcome], None]


class ImageFailedError(RuntimeError):
    """Raised by :func:`analyze` with ``fail_fast=True`` when an image fails."""


@dataclass
class RunResult:
    """Everything a run produced (the same tables are on disk in ``output_dir``).

    Attributes
    ----------
    particles : pandas.DataFrame
        Merged particle table (lengths in nm, areas in nm²).
    images : pandas.DataFrame
        One row per analysed image: pixel size, counts, quality signal, timings.
    errors : pandas.DataFrame
        One row per failed image (:data:`~antema_scale.pipeline.results.ERROR_COLUMNS`).
    excluded : pandas.DataFrame
        Regions excluded from measurement, with the reason.
    output_dir : Path
        Run folder.
    files : dict
        Name -> path of every table written.
    analysed, reused : list of str
        Image ids processed in this run, and reused from an earlier run.
    cluster : dict
        Where it ran (scheduler, dashboard link, workers, threads).
    stopped_early : bool
        ``fail_fast`` stopped the run before every image was processed.
    skipped : list of str
        Files in input folders that are not micrograph formats (not analysed, not errors).
    """

    particles: pd.DataFrame
    images: pd.DataFrame
    errors: pd.DataFrame
    excluded: pd.DataFrame
    output_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    analysed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    cluster: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every input was analysed without error and the run was not stopped early."""
        return self.errors.empty and not self.stopped_early


def default_analysis_options(**fields: Any) -> Any:
    """:class:`antema_scale.particles.AnalysisOptions` with the paper's defaults, overridden by ``fields``."""
    from antema_scale.particles import AnalysisOptions

    return AnalysisOptions(**fields)


def split_options(
    options: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Sort flat keyword options into analysis, segmentation and cluster fields.

    Raises
    ------
    PipelineOptionError
        For a name that is none of them, listing the valid names.
    """
    from antema_scale.particles import AnalysisOptions

    groups: list[tuple[set[str], dict[str, Any]]] = [
        ({f.name for f in dataclasses.fields(AnalysisOptions)}, {}),
        ({f.name for f in dataclasses.fields(SegmentationSettings)}, {}),
        ({f.name for f in dataclasses.fields(ClusterSpec)}, {}),
    ]
    for name, value in options.items():
        for names, chosen in groups:
            if name in names:
                chosen[name] = value
                break
        else:
            valid = sorted(set().union(*(names for names, _ in groups)))
            raise PipelineOptionError(f"unknown option {name!r}; valid options: {', '.join(valid)}")
    return groups[0][1], groups[1][1], groups[2][1]


@contextmanager
def _client_for(cluster: ClusterSpec, client: Client | None) -> Iterator[Client]:
    if client is not None:
        yield client
    else:
        with connect(cluster) as started:
            yield started


def plan_work(
    entries: StoreEntries, parameters_hash: str, model_sha256: str, *, frames_per_task: int = 16
) -> list[ImageWork]:
    """Units of work with their result keys: one per image, or per chunk of
    ``frames_per_task`` frames for longer movies (the frame range is part of the key)."""
    work: list[ImageWork] = []
    for entry in entries.images:
        if entry.n_frames <= frames_per_task:
            key = result_key(entry.sha256, parameters_hash, model_sha256)
            work.append(ImageWork(entry.image_id, entry.source, entry.sha256, key))
            continue
        for start in range(0, entry.n_frames, frames_per_task):
            stop = min(start + frames_per_task, entry.n_frames)
            key = result_key(f"{entry.sha256}:frames {start}-{stop}", parameters_hash, model_sha256)
            work.append(ImageWork(entry.image_id, entry.source, entry.sha256, key, start, stop))
    return work


def split_finished(
    work: Sequence[ImageWork], output_dir: Path
) -> tuple[list[ImageWork], list[ImageWork]]:
    """(to process, reusable): an image is reusable when its stored result has its key."""
    todo: list[ImageWork] = []
    done: list[ImageWork] = []
    for item in work:
        (done if stored_result_key(output_dir, item.unit_id) == item.result_key else todo).append(
            item
        )
    return todo, done


@contextmanager
def rich_progress(total: int, description: str = "analysing images") -> Iterator[ProgressCallback]:
    """A rich progress bar over images; yields the callback to call per finished image."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, failed=0)
        failed = 0

        class Advance:
            def __call__(self, outcome: ImageOutcome) -> None:
                nonlocal failed
                failed += bool(outcome.error_type)
                progress.update(task, advance=1, failed=failed)

            def expect(self, extra: int) -> None:
                """``extra`` more units than planned (a movie split into frame chunks)."""
                total = progress.tasks[0].total or 0
                progress.update(task, total=total + extra)

        yield Advance()


def _write_outputs(
    output_dir: Path,
    particles: pd.DataFrame,
    images: pd.DataFrame,
    excluded: pd.DataFrame,
    errors: pd.DataFrame,
    table_formats: Sequence[str],
) -> dict[str, Path]:
    files = {
        "particles": output_dir / "particles.parquet",
        "images": output_dir / "images.parquet",
        "excluded": output_dir / "excluded.parquet",
        "errors": output_dir / "errors.parquet",
        "errors_csv": output_dir / "errors.csv",
    }
    write_parquet_atomically(particles, files["particles"])
    write_parquet_atomically(images, files["images"])
    write_parquet_atomically(
        excluded.astype({c: str for c in excluded.columns if excluded[c].dtype == object}),
        files["excluded"],
    )
    write_parquet_atomically(errors.astype(str), files["errors"])
    errors.to_csv(files["errors_csv"], index=False)
    extra = [fmt for fmt in table_formats if fmt in EXTRA_TABLE_FORMATS]
    if extra:
        from antema_scale.report import write_tables

        written = write_tables(particles, output_dir, formats=extra, images=images)
        files.update({f"particles_{fmt}": path for fmt, path in written.items()})
    return files


def _image_status(image_id: str, failed: set[str], reused: set[str], finished: set[str]) -> str:
    if image_id in failed:
        return "failed"
    if image_id in reused:
        return "reused"
    return "analysed" if image_id in finished else "not processed"


def run_analysis(
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    *,
    segmentation: SegmentationSettings | None = None,
    analysis_options: Any = None,
    cluster: ClusterSpec | None = None,
    client: Client | None = None,
    pixel_size_nm: float | tuple[float, float] | None = None,
    fail_fast: bool = False,
    retries: int = 2,
    max_in_flight: int | None = None,
    table_formats: Sequence[str] = (),
    progress: bool | ProgressCallback = False,
    on_cluster: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Analyse every image of ``inputs`` and write the run's tables to ``output_dir``.

    Parameters
    ----------
    inputs : path, glob, or sequence of them
        Micrograph files, folders, glob patterns, or an ingested Zarr store.
    output_dir : str or Path
        Run folder (created). A re-run into the same folder reuses finished images.
    segmentation : SegmentationSettings, optional
        Segmenter, model file, device, batch size (default: the shipped model).
    analysis_options : AnalysisOptions, optional
        Cleaning, convexity thresholds, separation mode, sizes in nm (paper defaults).
    cluster : ClusterSpec, optional
        Where to run (default: a local cluster sized to this machine).
    client : distributed.Client, optional
        Use this client instead of ``cluster``.
    pixel_size_nm : float or (float, float), optional
        Pixel size (nm/px; one number or (y, x)) for every file; needed for png/jpg.
    fail_fast : bool
        Stop at the first failed image.
    retries : int
        Automatic retries of a task that failed with a transient error.
    max_in_flight : int, optional
        Images submitted at once (default: 2 per worker thread, at least 4).
    table_formats : sequence of str
        Extra particle tables besides Parquet: ``"csv"``, ``"xlsx"``.
    progress : bool or callable
        ``True`` shows a rich progress bar; a callable gets each image's outcome.
    on_cluster : callable, optional
        Called with the cluster description (scheduler, dashboard link) once connected.

    Returns
    -------
    RunResult
    """
    unknown = [fmt for fmt in table_formats if fmt not in EXTRA_TABLE_FORMATS]
    if unknown:
        raise PipelineOptionError(
            f"unknown table format(s) {unknown}; choose from {list(EXTRA_TABLE_FORMATS)}"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    segmentation = segmentation or SegmentationSettings()
    analysis_options = (
        analysis_options if analysis_options is not None else default_analysis_options()
    )
    started = utc_now()
    spec = SegmenterSpec.from_settings(segmentation)
    parameters_hash = parameter_hash(segmentation, analysis_options)
    with _client_for(cluster or ClusterSpec(), client) as active:
        description = cluster_description(active)
        if on_cluster is not None:
            on_cluster(description)
        active.register_plugin(SegmenterPlugin(spec))
        entries = plan_store(
            inputs,
            output_dir,
            pixel_size_nm=pixel_size_nm,
            client=active,
            progress=progress is True,
        )

        def plan(images: list[Any]) -> list[ImageWork]:
            return plan_work(
                StoreEntries(entries.store_path, images),
                parameters_hash,
                spec.model_sha256,
                frames_per_task=segmentation.frames_per_task,
            )

        work = plan(entries.images)
        todo, reused = split_finished(work, output_dir)
        feed = IngestFeed(
            entries.pending,
            lambda row: split_finished(plan([store_image_of(row)]), output_dir),
        )
        context = RunContext(
            store_path=str(entries.store_path),
            output_dir=str(output_dir),
            segmenter=spec,
            analysis_options=analysis_options,
        )
        options = GraphOptions(
            max_in_flight=max_in_flight or max(4, 2 * max(1, description["threads"])),
            retries=retries,
            use_gpu_resources=gpu_resource_available(active),
            fail_fast=fail_fast,
        )
        if callable(progress):
            bar: Any = nullcontext(progress)
        elif progress and (todo or feed.tasks):
            bar = rich_progress(len(todo) + len(feed.tasks))
        else:
            bar = nullcontext(None)
        if fail_fast and entries.errors:
            graph = GraphRun(stopped_early=True)
        else:
            with bar as callback:
                graph = run_graph(active, todo, context, options, on_outcome=callback, feed=feed)
    if feed.rows:
        from antema_scale.io import open_store

        open_store(entries.store_path).rebuild_index()
    work = sorted([*work, *feed.work], key=lambda item: (item.image_id, item.frame_start or 0))
    reused = [*reused, *feed.reused]
    failed = {outcome.image_id for outcome in graph.failed}
    finished = {outcome.image_id for outcome in graph.outcomes if not outcome.error_type}
    reused_ids = {item.unit_id for item in reused}
    merged = merge_image_results(
        output_dir,
        [item.unit_id for item in work if item.unit_id in finished or item.unit_id in reused_ids],
    )
    errors = errors_frame(
        [
            *entries.errors,
            *feed.errors,
            *(outcome.error_record() for outcome in graph.failed),
        ]
    )
    files = _write_outputs(
        output_dir, merged.particles, merged.images, merged.excluded, errors, table_formats
    )
    manifest = build_manifest(
        inputs=[
            {
                "image_id": item.image_id,
                "source": item.source,
                "sha256": item.sha256,
                "result_key": item.result_key,
                "status": _image_status(item.unit_id, failed, reused_ids, finished),
                **(
                    {}
                    if item.frame_start is None
                    else {"frames": [item.frame_start, item.frame_stop]}
                ),
            }
            for item in work
        ]
        + [
            {"source": record["source"], "status": "failed", "error_type": record["error_type"]}
            for record in [*entries.errors, *feed.errors]
        ]
        + [
            {"source": source, "status": "skipped: not a micrograph file type"}
            for source in entries.skipped
        ],
        parameters={
            "segmentation": options_as_dict(segmentation),
            "analysis": options_as_dict(analysis_options),
            "pixel_size_nm": pixel_size_nm,
            "retries": retries,
            "fail_fast": fail_fast,
        },
        parameters_hash=parameters_hash,
        model={
            "segmenter": segmentation.segmenter,
            "path": str(segmentation.resolved_model_path() or ""),
            "sha256": spec.model_sha256,
        },
        cluster=description,
        counts={
            "images": len(work) + len(entries.errors) + len(feed.errors),
            "analysed": len(finished),
            "reused": len(reused),
            "failed": len(errors),
            "particles": len(merged.particles),
        },
        started=started,
        finished=utc_now(),
    )
    files["manifest"] = write_manifest(manifest, output_dir)
    return RunResult(
        particles=merged.particles,
        images=merged.images,
        errors=errors,
        excluded=merged.excluded,
        output_dir=output_dir,
        files=files,
        analysed=sorted(finished),
        reused=sorted(reused_ids),
        cluster=description,
        stopped_early=graph.stopped_early,
        skipped=list(entries.skipped),
    )


def analyze(
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    **options: Any,
) -> pd.DataFrame:
    """Analyse micrographs on a Dask cluster; return the merged particle table.

    Parameters
    ----------
    inputs : path, glob, or sequence of them
        Micrograph files, folders, glob patterns, or an ingested Zarr store.
    output_dir : str or Path
        Run folder: ``particles.parquet``, ``images.parquet``, ``errors.parquet``/``.csv``,
        ``manifest.json``, ``per_image/`` and ``store.zarr`` are written there.
    **options
        Any field of :class:`antema_scale.particles.AnalysisOptions` (e.g.
        ``separation="watershed"``, sizes in nm), of :class:`SegmentationSettings`
        (``segmenter``, ``model_path``, ``device``, ``batch_size``), of
        :class:`~antema_scale.pipeline.cluster.ClusterSpec` (``scheduler``, ``workers``,
        ...), or a keyword of :func:`run_analysis` (``client``, ``pixel_size_nm``,
        ``fail_fast``, ``retries``, ``table_formats``, ``progress``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per particle (lengths in nm, areas in nm²), sorted by image and particle.

    Raises
    ------
    ImageFailedError
        With ``fail_fast=True``, when an image fails (the tables are still written).
    PipelineOptionError
        For an unknown option name.
    """
    run_keywords = {
        name: options.pop(name)
        for name in (
            "client",
            "pixel_size_nm",
            "fail_fast",
            "retries",
            "max_in_flight",
            "table_formats",
            "progress",
        )
        if name in options
    }
    for name in ("segmentation", "analysis_options", "cluster"):
        if name in options:
            run_keywords[name] = options.pop(name)
    analysis_fields, segmentation_fields, cluster_fields = split_options(options)
    if analysis_fields:
        base = run_keywords.get("analysis_options") or default_analysis_options()
        run_keywords["analysis_options"] = dataclasses.replace(base, **analysis_fields)
    if segmentation_fields:
        base = run_keywords.get("segmentation") or SegmentationSettings()
        run_keywords["segmentation"] = dataclasses.replace(base, **segmentation_fields)
    if cluster_fields:
        base = run_keywords.get("cluster") or ClusterSpec()
        run_keywords["cluster"] = dataclasses.replace(base, **cluster_fields)
    result = run_analysis(inputs, output_dir, **run_keywords)
    if run_keywords.get("fail_fast") and not result.ok:
        first = result.errors.iloc[0] if len(result.errors) else None
        detail = (
            f"{first['source']}: {first['error_type']}: {first['message']}"
            if first is not None
            else "stopped"
        )
        raise ImageFailedError(
            f"analysis stopped at the first failure ({detail}); see {result.output_dir}"
        )
    return result.particles


__all__ = [
    "ERROR_COLUMNS",
    "ImageFailedError",
    "RunResult",
    "analyze",
    "default_analysis_options",
    "run_analysis",
    "split_options",
]
