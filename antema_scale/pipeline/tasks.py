"""The functions Dask runs: segment a group of images, measure one image.

Both are plain module-level functions of picklable arguments (no model, no image data in
the graph: tasks read pixels from the Zarr store and take the model from the
per-process cache of :mod:`antema_scale.pipeline.model_plugin`).

Failure policy inside a task:

- an image that cannot be read, segmented or analysed (a bad file, a degenerate image)
  is *data*, not a crash: the task returns an :class:`ImageOutcome` carrying the error
  class and message, and the run goes on;
- transient system failures (:data:`TRANSIENT_ERRORS`: I/O, memory, connections) are
  raised so that Dask retries the task, and reported as an error only if every retry
  fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from antema_scale.pipeline.model_plugin import cached_segmenter
from antema_scale.pipeline.results import write_image_result
from antema_scale.pipeline.segmenters import Segmenter, SegmenterSpec
from antema_scale.segment.errors import ImageInputError

#: Errors Dask should retry rather than record: they say nothing about the image.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    MemoryError,
    OSError,
)


@dataclass(frozen=True)
class ImageWork:
    """One image to process: identity in the store and the key its result is stored under.

    Parameters
    ----------
    image_id : str
        Identifier in the store index.
    source : str
        File the image came from.
    sha256 : str
        Checksum of the image.
    result_key : str
        :func:`antema_scale.pipeline.settings.result_key` for this run.
    frame_start, frame_stop : int or None
        For a chunk of a movie: the frames ``[frame_start, frame_stop)`` it covers; None
        for a whole image or movie.
    """

    image_id: str
    source: str
    sha256: str
    result_key: str
    frame_start: int | None = None
    frame_stop: int | None = None

    @property
    def unit_id(self) -> str:
        """Name of this unit of work and of its result file: the image id, plus the frame
        range for a chunk of a movie (``<image id>@f00016-00032``)."""
        if self.frame_start is None:
            return self.image_id
        return f"{self.image_id}@f{self.frame_start:05d}-{self.frame_stop:05d}"


@dataclass(frozen=True)
class RunContext:
    """Everything a task needs besides its image (small and picklable).

    Parameters
    ----------
    store_path : str
        The run's Zarr store.
    output_dir : str
        The run folder (``per_image/`` lives there).
    segmenter : SegmenterSpec
        Which segmenter (loaded once per process).
    analysis_options : object
        :class:`antema_scale.particles.AnalysisOptions` of the run.
    """

    store_path: str
    output_dir: str
    segmenter: SegmenterSpec
    analysis_options: Any


@dataclass
class SegmentedImage:
    """Result of the segmentation task for one image.

    Attributes
    ----------
    masks : list of bool arrays
        One mask per frame (a single entry for a 2-D image).
    pixel_size_nm : tuple of float
        (y, x) pixel size in nm.
    quality : dict
        The segmenter's quality signal (mean over frames for movies).
    frame_indices : list of int
        Index of each frame in the movie; empty for 2-D images.
    frame_times_s : list of float
        Time of each frame in s (NaN when unknown); empty for 2-D images.
    seconds : float
        Wall time spent reading and segmenting, s.
    error_type, message : str
        Set when the image could not be read or segmented.
    """

    masks: list[np.ndarray] = field(default_factory=list)
    pixel_size_nm: tuple[float, float] = (float("nan"), float("nan"))
    quality: dict[str, Any] = field(default_factory=dict)
    frame_indices: list[int] = field(default_factory=list)
    frame_times_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    stage: str = ""
    error_type: str = ""
    message: str = ""


@dataclass
class ImageOutcome:
    """What the client learns about one image: its summary row or its error."""

    image_id: str
    source: str
    image_row: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    error_type: str = ""
    message: str = ""

    @classmethod
    def failure(cls, work: ImageWork, stage: str, error_type: str, message: str) -> ImageOutcome:
        """An outcome for an image that failed at ``stage``."""
        return cls(work.unit_id, work.source, stage=stage, error_type=error_type, message=message)

    def error_record(self) -> dict[str, str]:
        """Row of the errors table."""
        return {
            "image_id": self.image_id,
            "source": self.source,
            "stage": self.stage,
            "error_type": self.error_type,
            "message": self.message,
        }


#: Frames of a movie that decide its scale adaptation (first, middle, last).
MOVIE_PROBE_FRAMES = 3


def movie_probe_frames(n_frames: int, count: int = MOVIE_PROBE_FRAMES) -> list[int]:
    """Indices of the frames that take a movie's one scale decision: evenly spaced, ends included.

    Every frame chunk of a movie reads the same frames, so the chunks (separate tasks,
    possibly on separate workers) take the same decision without talking to each other.
    """
    if n_frames < 1:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, min(count, n_frames))})


def _read_frames(
    store: Any, work: ImageWork, *, probes: bool = False
) -> tuple[list[np.ndarray], list[int], list[float], list[np.ndarray], Any]:
    """The 2-D frames of ``work`` (a whole image, a whole movie or a frame chunk of one).

    Returns
    -------
    frames : list of 2-D arrays
    indices : list of int
        Frame index of each frame in the movie; empty for a 2-D image.
    times : list of float
        Time of each frame in s (NaN when unknown); empty for a 2-D image.
    probe_frames : list of 2-D arrays
        With ``probes``, the movie's :func:`movie_probe_frames` (also for a chunk that
        does not contain them); empty for a 2-D image or without ``probes``.
    image : xarray.DataArray
        The (lazy) image, for its attrs.
    """
    from antema_scale.pipeline.store_access import read_image

    whole = read_image(store, work.image_id, lazy=work.frame_start is not None)
    image = whole
    if work.frame_start is not None:
        image = whole.isel(frame=slice(work.frame_start, work.frame_stop)).load(
            scheduler="synchronous"
        )
    values = np.asarray(image.values)
    if values.ndim == 2:
        return [values], [], [], [], image
    first = work.frame_start or 0
    indices = list(range(first, first + values.shape[0]))
    times = (
        [float(t) for t in np.asarray(image.coords["time"].values)]
        if "time" in image.coords
        else [float("nan")] * values.shape[0]
    )
    probe_frames: list[np.ndarray] = []
    if probes:
        wanted = movie_probe_frames(int(whole.sizes["frame"]))
        if work.frame_start is None:
            probe_frames = [values[index] for index in wanted]
        else:
            sample = whole.isel(frame=wanted).load(scheduler="synchronous")
            probe_frames = [np.asarray(frame) for frame in np.asarray(sample.values)]
    return [values[index] for index in range(values.shape[0])], indices, times, probe_frames, image


def _pixel_size(image: Any) -> tuple[float, float]:
    return float(image.attrs["pixel_size_nm_y"]), float(image.attrs["pixel_size_nm_x"])


def _segmenter_pixel_size(size: tuple[float, float]) -> float:
    """Scalar pixel size for the segmenter: the finer axis of an anisotropic grid (nm)."""
    return float(min(size))


def _mean_quality(qualities: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if len(qualities) == 1:
        return dict(qualities[0])
    merged: dict[str, Any] = {}
    for name in qualities[0]:
        values = [quality.get(name) for quality in qualities]
        if all(isinstance(value, (bool, np.bool_)) for value in values):
            merged[name] = bool(any(values))
        else:
            merged[name] = float(np.mean([float(value) for value in values]))
    return merged


@dataclass
class _LoadedImage:
    work: ImageWork
    frames: list[np.ndarray]
    indices: list[int]
    times: list[float]
    pixel_size_nm: tuple[float, float]
    seconds: float
    probe_frames: list[np.ndarray] = field(default_factory=list)


def _load(store: Any, work: ImageWork, *, probes: bool = False) -> _LoadedImage | SegmentedImage:
    """The frames of one stored image, or a read error as a :class:`SegmentedImage`."""
    started = time.perf_counter()
    try:
        frames, indices, times, probe_frames, image = _read_frames(store, work, probes=probes)
        size = _pixel_size(image)
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        return SegmentedImage(stage="read", error_type=type(error).__name__, message=str(error))
    return _LoadedImage(
        work, frames, indices, times, size, time.perf_counter() - started, probe_frames
    )


def _predict(segmenter: Segmenter, loaded: Sequence[_LoadedImage]) -> list[list[Any]]:
    """Segment every frame of ``loaded`` in one call; per-image predictions.

    The frames of a movie share one scale decision, taken from its probe frames
    (:func:`movie_probe_frames`); still images decide for themselves.
    """
    frames = [frame for image in loaded for frame in image.frames]
    sizes = [_segmenter_pixel_size(image.pixel_size_nm) for image in loaded for _ in image.frames]
    refine_zooms: list[float | None] = []
    for image in loaded:
        zoom = (
            segmenter.movie_refine_zoom(
                image.probe_frames, _segmenter_pixel_size(image.pixel_size_nm)
            )
            if image.probe_frames
            else None
        )
        refine_zooms.extend([zoom] * len(image.frames))
    predictions = list(segmenter.segment(frames, sizes, refine_zooms))
    per_image, start = [], 0
    for image in loaded:
        per_image.append(predictions[start : start + len(image.frames)])
        start += len(image.frames)
    return per_image


def _store_segmentation(
    store: Any, image: _LoadedImage, predictions: list[Any], seconds: float
) -> SegmentedImage:
    from antema_scale.pipeline.store_access import write_mask

    masks = [np.asarray(prediction.mask, dtype=bool) for prediction in predictions]
    if image.indices:
        for index, mask in zip(image.indices, masks, strict=True):
            write_mask(store, image.work.image_id, mask, frame=index)
    else:
        write_mask(store, image.work.image_id, masks[0])
    return SegmentedImage(
        masks=masks,
        pixel_size_nm=image.pixel_size_nm,
        quality=_mean_quality([dict(prediction.quality) for prediction in predictions]),
        frame_indices=image.indices,
        frame_times_s=image.times,
        seconds=image.seconds + seconds,
    )


def _segment_each(
    store: Any, segmenter: Segmenter, loaded: Sequence[_LoadedImage]
) -> dict[str, SegmentedImage]:
    """Segment images one by one, so that one bad image fails alone."""
    results: dict[str, SegmentedImage] = {}
    for image in loaded:
        started = time.perf_counter()
        try:
            [predictions] = _predict(segmenter, [image])
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            # An ImageInputError's "image <i>:" is its place in this one-image call: the
            # error row names the file already, so its reason is the message.
            message = error.reason if isinstance(error, ImageInputError) else str(error)
            results[image.work.unit_id] = SegmentedImage(
                stage="segment", error_type=type(error).__name__, message=message
            )
            continue
        results[image.work.unit_id] = _store_segmentation(
            store, image, predictions, time.perf_counter() - started
        )
    return results


def segment_group(context: RunContext, group: Sequence[ImageWork]) -> dict[str, SegmentedImage]:
    """Read, segment and store the masks of a group of images (one model load per process).

    The frames of all readable images of the group go to the segmenter in one call (the
    network batches their tiles); if that call fails, the images are segmented one by one
    so that only the image at fault becomes an error.

    Parameters
    ----------
    context : RunContext
        The run.
    group : sequence of ImageWork
        Images segmented by this task.

    Returns
    -------
    dict
        Image id -> :class:`SegmentedImage` (masks, quality, or the error).
    """
    from antema_scale.pipeline.store_access import open_run_store

    store = open_run_store(context.store_path)
    segmenter = cached_segmenter(context.segmenter)
    results: dict[str, SegmentedImage] = {}
    loaded: list[_LoadedImage] = []
    for work in group:
        image = _load(store, work, probes=segmenter.shares_scale_per_movie)
        if isinstance(image, SegmentedImage):
            results[work.unit_id] = image
        else:
            loaded.append(image)
    if len(loaded) == 1:
        results.update(_segment_each(store, segmenter, loaded))
    elif loaded:
        started = time.perf_counter()
        try:
            per_image = _predict(segmenter, loaded)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            results.update(_segment_each(store, segmenter, loaded))
        else:
            share = (time.perf_counter() - started) / len(loaded)
            for image, predictions in zip(loaded, per_image, strict=True):
                results[image.work.unit_id] = _store_segmentation(store, image, predictions, share)
    return {work.unit_id: results[work.unit_id] for work in group}


def _frame_table(table: Any, frame: int | None, time_s: float) -> pd.DataFrame:
    particles = table.particles.copy()
    if frame is not None:
        particles.insert(1, "frame", np.int64(frame))
        particles.insert(2, "time_s", float(time_s))
    return particles


def _excluded_table(table: Any, frame: int | None) -> pd.DataFrame:
    excluded = table.excluded.copy()
    if frame is not None:
        excluded["frame"] = frame
    return excluded


def _summary_values(table: Any) -> dict[str, Any]:
    summary = table.summary()
    if isinstance(summary, pd.DataFrame):
        summary = summary.iloc[0].to_dict() if len(summary) == 1 else {}
    elif isinstance(summary, pd.Series):
        summary = summary.to_dict()
    return {f"summary_{name}": value for name, value in dict(summary).items() if name != "image_id"}


def analyze_segmented(
    work: ImageWork, segmented: SegmentedImage, analysis_options: Any
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Clean, separate and measure every frame of one segmented image.

    Parameters
    ----------
    work : ImageWork
        The image.
    segmented : SegmentedImage
        Its masks and pixel size (nm).
    analysis_options : AnalysisOptions
        Particle-analysis options.

    Returns
    -------
    particles, excluded : pandas.DataFrame
        Particle table (lengths in nm; with ``frame``, ``time_s`` for movies) and
        excluded regions.
    summary : dict
        Counts and the per-image summary of :meth:`ParticleTable.summary` (2-D images).
    """
    from antema_scale.particles import analyze_mask

    size = segmented.pixel_size_nm
    pixel_size: float | tuple[float, float] = size[0] if size[0] == size[1] else size
    is_movie = bool(segmented.frame_indices)
    particles: list[pd.DataFrame] = []
    excluded: list[pd.DataFrame] = []
    summary: dict[str, Any] = {}
    for index, mask in enumerate(segmented.masks):
        table = analyze_mask(mask, pixel_size, options=analysis_options, image_id=work.image_id)
        frame = segmented.frame_indices[index] if is_movie else None
        time_s = segmented.frame_times_s[index] if is_movie else float("nan")
        particles.append(_frame_table(table, frame, time_s))
        excluded.append(_excluded_table(table, frame))
        if not is_movie:
            summary = _summary_values(table)
    merged = pd.concat(particles, ignore_index=True)
    excluded_all = pd.concat(excluded, ignore_index=True)
    summary.update({"n_particles": len(merged), "n_excluded": len(excluded_all)})
    return merged, excluded_all, summary


def measure_image(
    context: RunContext, work: ImageWork, segmentation: dict[str, SegmentedImage]
) -> ImageOutcome:
    """Analyse one segmented image and write its result file atomically.

    Parameters
    ----------
    context : RunContext
        The run.
    work : ImageWork
        The image.
    segmentation : dict
        Output of :func:`segment_group` for the image's group.

    Returns
    -------
    ImageOutcome
        The image's summary row, or the error that stopped it.
    """
    from pathlib import Path

    segmented = segmentation[work.unit_id]
    if segmented.error_type:
        return ImageOutcome.failure(work, segmented.stage, segmented.error_type, segmented.message)
    started = time.perf_counter()
    try:
        particles, excluded, summary = analyze_segmented(work, segmented, context.analysis_options)
    except TRANSIENT_ERRORS:
        raise
    except Exception as error:
        return ImageOutcome.failure(work, "analyze", type(error).__name__, str(error))
    image_row: dict[str, Any] = {
        "image_id": work.image_id,
        "source": work.source,
        "sha256": work.sha256,
        "result_key": work.result_key,
        "pixel_size_nm_y": segmented.pixel_size_nm[0],
        "pixel_size_nm_x": segmented.pixel_size_nm[1],
        "height_px": int(segmented.masks[0].shape[0]),
        "width_px": int(segmented.masks[0].shape[1]),
        "frames": len(segmented.masks),
        **summary,
        **{f"quality_{name}": value for name, value in segmented.quality.items()},
        "segment_seconds": segmented.seconds,
        "analyze_seconds": time.perf_counter() - started,
    }
    if work.frame_start is not None:
        image_row["frame_start"] = work.frame_start
        image_row["frame_stop"] = work.frame_stop
    write_image_result(
        Path(context.output_dir), work.unit_id, work.result_key, particles, image_row, excluded
    )
    return ImageOutcome(work.unit_id, work.source, image_row=image_row)
