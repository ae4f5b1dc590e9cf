"""The task graph of a run, submitted as futures in a sliding window.

For every group of images (``images_per_task``, 1 by default) one segmentation task runs
the network on the group and writes the masks into the store; it asks for the worker
resource ``GPU`` when the cluster has GPU workers. For every image one measurement task
(CPU) depends on its group's segmentation task, analyses the mask and writes the image's
result file. Futures are submitted through :class:`distributed.as_completed` with at most
``max_in_flight`` images outstanding, so memory stays bounded however many images a run
has, progress streams image by image, and a graph for 10,000 images is planned and
submitted in seconds. Tasks are retried on transient failures (``retries``) and re-run
by the scheduler when a worker dies; an image's result file is written atomically under
one name, so a re-run task can never count an image twice.

Files that are not yet in the store arrive as an :class:`IngestFeed`: their ingest tasks
(read the file, write its Zarr group) are submitted a window at a time alongside the
segmentation and measurement tasks, and each ingested image joins the queue as soon as its
ingest task returns, so reading files overlaps with segmenting the ones already read.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from antema_scale.pipeline.tasks import (
    ImageOutcome,
    ImageWork,
    RunContext,
    measure_image,
    segment_group,
)

if TYPE_CHECKING:
    from distributed import Client, Future

#: Resource request of segmentation tasks on clusters with GPU workers.
GPU_TASK_RESOURCES: dict[str, float] = {"GPU": 1}


def group_work(work: Sequence[ImageWork], images_per_task: int) -> list[list[ImageWork]]:
    """Split ``work`` into consecutive groups of at most ``images_per_task`` images."""
    size = max(1, images_per_task)
    return [list(work[start : start + size]) for start in range(0, len(work), size)]


@dataclass
class GraphOptions:
    """How the graph is submitted.

    Parameters
    ----------
    max_in_flight : int
        Images submitted but not yet finished, at most.
    retries : int
        Automatic retries of a task that raised (transient failures).
    use_gpu_resources : bool
        Restrict segmentation tasks to workers that advertise ``GPU``.
    fail_fast : bool
        Stop submitting and cancel what is in flight after the first failed image.
    """

    max_in_flight: int = 8
    retries: int = 2
    use_gpu_resources: bool = False
    fail_fast: bool = False


@dataclass
class GraphRun:
    """What came back from a run of the graph."""

    outcomes: list[ImageOutcome] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def failed(self) -> list[ImageOutcome]:
        """Outcomes of images that ended in an error."""
        return [outcome for outcome in self.outcomes if outcome.error_type]


@dataclass
class IngestFeed:
    """Files to ingest during the run, and what became of them.

    Parameters
    ----------
    tasks : sequence of antema_scale.io.ingest.IngestTask
        New files, one ingest task each.
    plan : callable
        Index row of an ingested image -> (work units to process, work units whose stored
        results are reused); applies the run's result keys and frame chunking.

    Attributes
    ----------
    rows : list of dict
        Index rows of the images ingested.
    errors : list of dict
        Errors-table rows of files that could not be ingested.
    work, reused : list of ImageWork
        Every unit planned from ingested images, and those reused from earlier runs.
    """

    tasks: Sequence[Any]
    plan: Callable[[dict[str, Any]], tuple[list[ImageWork], list[ImageWork]]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    work: list[ImageWork] = field(default_factory=list)
    reused: list[ImageWork] = field(default_factory=list)


def _task_key(prefix: str, image_id: str) -> str:
    return f"antema-{prefix}-{image_id[:40]}-{uuid.uuid4().hex[:12]}"


def submit_groups(
    client: Client,
    groups: Sequence[Sequence[ImageWork]],
    context: RunContext,
    options: GraphOptions,
) -> list[tuple[Future, ImageWork]]:
    """Submit one segmentation task per group and one measurement task per image.

    Uses two batched :meth:`distributed.Client.map` calls, so submitting thousands of
    images costs two scheduler round trips rather than one per task.

    Returns
    -------
    list of (distributed.Future, ImageWork)
        The measurement future of every image, in order.
    """
    if not groups:
        return []
    segmentations = client.map(
        segment_group,
        [context] * len(groups),
        [list(group) for group in groups],
        key=[_task_key("segment", group[0].image_id) for group in groups],
        resources=GPU_TASK_RESOURCES if options.use_gpu_resources else None,
        retries=options.retries,
        pure=False,
    )
    items = [
        (segmentation, work)
        for segmentation, group in zip(segmentations, groups, strict=True)
        for work in group
    ]
    measurements = client.map(
        measure_image,
        [context] * len(items),
        [work for _, work in items],
        [segmentation for segmentation, _ in items],
        key=[_task_key("measure", work.image_id) for _, work in items],
        retries=options.retries,
        pure=False,
    )
    return list(zip(measurements, [work for _, work in items], strict=True))


def outcome_of(future: Future, work: ImageWork) -> ImageOutcome:
    """The outcome of a finished measurement future; a task that raised becomes an error."""
    if future.status == "finished":
        return future.result()
    if future.status == "error":
        error = future.exception()
        return ImageOutcome.failure(work, "task", type(error).__name__, str(error) or repr(error))
    return ImageOutcome.failure(work, "task", "CancelledError", f"task was {future.status}")


def run_graph(
    client: Client,
    work: Sequence[ImageWork],
    context: RunContext,
    options: GraphOptions,
    on_outcome: Callable[[ImageOutcome], None] | None = None,
    feed: IngestFeed | None = None,
) -> GraphRun:
    """Run (ingest,) segmentation and measurement of ``work`` on ``client``'s cluster.

    Parameters
    ----------
    client : distributed.Client
        Where to run.
    work : sequence of ImageWork
        Images already in the store to process (already filtered for resume).
    context : RunContext
        Store, output folder, segmenter and analysis options of the run.
    options : GraphOptions
        Window size, retries, GPU restriction, fail-fast.
    on_outcome : callable, optional
        Called on the client with each image's outcome as it arrives (progress bars). A
        failed ingest is reported too (stage ``ingest``). If the callable has an
        ``expect(n)`` method it is told about units added by movies split into chunks.
    feed : IngestFeed, optional
        Files to ingest first; at most ``max_in_flight // 2`` (>= 1) of them are read at
        a time, and their images are queued as they arrive.

    Returns
    -------
    GraphRun
        One outcome per image that finished (all of them unless stopped early); ingest
        failures are in ``feed.errors``.
    """
    from distributed import as_completed

    from antema_scale.io.ingest import ingest_file
    from antema_scale.pipeline.store_access import ingest_error_record

    per_task = max(1, context.segmenter.settings.images_per_task)
    queue: deque[list[ImageWork]] = deque(group_work(work, per_task))
    arriving: list[ImageWork] = []  # ingested units not yet grouped
    if feed is None:
        feed = IngestFeed((), lambda row: ([], []))
    files = deque(feed.tasks)
    ingest_window = max(1, options.max_in_flight // 2)
    measuring: dict[str, tuple[Future, ImageWork]] = {}
    ingesting: dict[str, tuple[Future, Any]] = {}
    completed = as_completed(loop=client.loop)
    run = GraphRun()
    expect = getattr(on_outcome, "expect", None)

    def fill_window() -> None:
        while files and len(ingesting) < ingest_window and len(arriving) < options.max_in_flight:
            task = files.popleft()
            future = client.submit(
                ingest_file,
                task,
                key=_task_key("ingest", task.image_id),
                retries=options.retries,
                pure=False,
            )
            ingesting[future.key] = (future, task)
            completed.add(future)
        if arriving and (len(arriving) >= per_task or not (files or ingesting)):
            queue.extend(group_work(arriving, per_task))
            arriving.clear()
        batch: list[list[ImageWork]] = []
        room = options.max_in_flight - len(measuring)
        while room > 0 and queue:
            group = queue.popleft()
            batch.append(group)
            room -= len(group)
        for future, item in submit_groups(client, batch, context, options):
            measuring[future.key] = (future, item)
            completed.add(future)

    def ingested(future: Future, task: Any) -> ImageOutcome | None:
        row = future.result() if future.status == "finished" else None
        if row is None or "error" in row:
            error = row or {
                "source": str(task.path),
                "error": type(future.exception()).__name__,
                "message": str(future.exception()),
            }
            record = ingest_error_record(error)
            feed.errors.append(record)
            return ImageOutcome(
                task.image_id,
                record["source"],
                stage="ingest",
                error_type=record["error_type"],
                message=record["message"],
            )
        feed.rows.append(row)
        todo, reused = feed.plan(row)
        feed.work.extend([*todo, *reused])
        feed.reused.extend(reused)
        arriving.extend(todo)
        if expect is not None and len(todo) + len(reused) != 1:
            expect(len(todo) + len(reused) - 1)
        for item in reused:
            outcome = ImageOutcome(item.unit_id, item.source, stage="reused")
            if on_outcome is not None:
                on_outcome(outcome)
        return None

    def cancel_in_flight() -> None:
        client.cancel([pending for pending, _ in [*measuring.values(), *ingesting.values()]])
        completed.clear()

    try:
        fill_window()
        for future in completed:
            if future.key in ingesting:
                _, task = ingesting.pop(future.key)
                outcome = ingested(future, task)
                if outcome is None:
                    fill_window()
                    continue
            else:
                _, item = measuring.pop(future.key)
                outcome = outcome_of(future, item)
                run.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if options.fail_fast and outcome.error_type:
                run.stopped_early = True
                cancel_in_flight()
                break
            fill_window()
    except BaseException:
        # Interrupted (Ctrl-C, a failing progress callback): stop the window's queued work
        # instead of leaving it to run on a long-lived cluster. Tasks already executing
        # finish on their worker and their result files stay valid for a resumed run.
        cancel_in_flight()
        raise
    return run
