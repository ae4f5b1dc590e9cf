"""The segmenters a pipeline task calls, behind one method: ``segment(images, pixel_sizes)``.

Both wrap :mod:`antema_scale.segment` (the network and the classical baseline); the
pipeline only adds the uniform interface and the picklable :class:`SegmenterSpec` that
the per-process cache (:mod:`antema_scale.pipeline.model_plugin`) turns into a loaded
segmenter once per worker.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from antema_scale.pipeline.settings import SegmentationSettings


@runtime_checkable
class Segmenter(Protocol):
    """What a pipeline task needs of a segmenter (:class:`ThresholdSegmenter`, :class:`ModelSegmenter`).

    ``segment`` returns one :class:`antema_scale.segment.Prediction` per image;
    ``shares_scale_per_movie`` says whether the frames of a movie should be segmented with
    one scale decision, which ``movie_refine_zoom`` takes from a few sample frames.
    """

    @property
    def shares_scale_per_movie(self) -> bool:
        """Whether the frames of a movie share one scale decision."""
        ...

    def movie_refine_zoom(self, frames: Sequence[np.ndarray], pixel_size_nm: float) -> float | None:
        """One scale decision for a movie from sample frames (None: no decision)."""
        ...

    def segment(
        self,
        images: Sequence[np.ndarray],
        pixel_sizes_nm: Sequence[float],
        refine_zooms: Sequence[float | None] | None = None,
    ) -> list[Any]:
        """One prediction per image; pixel sizes in nm."""
        ...


class ThresholdSegmenter:
    """Classical Gaussian + threshold segmentation (:func:`antema_scale.segment.threshold_segment`)."""

    #: No scale decision to share between the frames of a movie.
    shares_scale_per_movie = False

    def movie_refine_zoom(self, frames: Sequence[np.ndarray], pixel_size_nm: float) -> None:
        """The threshold baseline works on the native grid: no decision (None)."""
        return None

    def segment(
        self,
        images: Sequence[np.ndarray],
        pixel_sizes_nm: Sequence[float],
        refine_zooms: Sequence[float | None] | None = None,
    ) -> list[Any]:
        """One prediction per image.

        Parameters
        ----------
        images : sequence of 2-D arrays
            Micrographs.
        pixel_sizes_nm : sequence of float
            Pixel size of each image in nm.
        refine_zooms : sequence, optional
            Ignored (the network's scale decisions; the baseline has none).

        Returns
        -------
        list of antema_scale.segment.Prediction
        """
        from antema_scale.segment import threshold_segment

        return [
            threshold_segment(image, size)
            for image, size in zip(images, pixel_sizes_nm, strict=True)
        ]


class ModelSegmenter:
    """The DeepLabV3+ network, loaded once (:func:`antema_scale.segment.load_model`).

    Parameters
    ----------
    model : object
        The loaded :class:`antema_scale.segment.SegmentationModel`.
    batch_size : int
        Tiles per forward pass.
    device : str
        Device the model runs on.
    scale_adaptation : bool
        Second pass on a finer grid for images of small particles (the default of
        :func:`antema_scale.segment.predict`); ``False``: one pass.
    flips : int
        Mirrored views averaged per tile (8, 4, 2 or 1).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast type of the network (:func:`antema_scale.segment.predict`).
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int,
        device: str,
        scale_adaptation: bool = True,
        flips: int = 8,
        precision: str = "auto",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.scale_adaptation = scale_adaptation
        self.flips = flips
        self.precision = precision

    @property
    def shares_scale_per_movie(self) -> bool:
        """Whether the frames of a movie should share one scale decision (:meth:`movie_refine_zoom`)."""
        return self.scale_adaptation

    def movie_refine_zoom(self, frames: Sequence[np.ndarray], pixel_size_nm: float) -> float | None:
        """One scale-adaptation decision for a movie from some of its frames.

        Parameters
        ----------
        frames : sequence of 2-D arrays
            Sample frames of the movie (:func:`antema_scale.pipeline.tasks.movie_probe_frames`).
        pixel_size_nm : float
            Pixel size of the movie in nm.

        Returns
        -------
        float or None
            Extra zoom for every frame (1 = one pass on the working grid); None when scale
            adaptation is off or there are no frames.
        """
        if not self.scale_adaptation or not len(frames):
            return None
        from antema_scale.segment.inference import shared_refine_zoom

        _, zoom = shared_refine_zoom(
            self.model,
            list(frames),
            [pixel_size_nm] * len(frames),
            batch_size=self.batch_size,
            flips=self.flips,
            precision=self.precision,
        )
        return zoom

    def segment(
        self,
        images: Sequence[np.ndarray],
        pixel_sizes_nm: Sequence[float],
        refine_zooms: Sequence[float | None] | None = None,
    ) -> list[Any]:
        """One prediction per image (batched across images and tiles).

        Parameters
        ----------
        images : sequence of 2-D arrays
            Micrographs.
        pixel_sizes_nm : sequence of float
            Pixel size of each image in nm.
        refine_zooms : sequence of float or None, optional
            Scale decisions taken beforehand (movie frames), as for
            :func:`antema_scale.segment.predict`; ignored when scale adaptation is off.

        Returns
        -------
        list of antema_scale.segment.Prediction
        """
        from antema_scale.segment import predict

        adaptation: dict[str, Any] = (
            {"refine_zooms": refine_zooms}
            if self.scale_adaptation
            else {"target_diameter_px": None}
        )
        return predict(
            self.model,
            list(images),
            list(pixel_sizes_nm),
            batch_size=self.batch_size,
            flips=self.flips,
            precision=self.precision,
            **adaptation,
        )


def worker_device(device: str, *, gpu_count: int | None = None, worker_name: object = None) -> str:
    """The device this worker process should use for ``device``.

    ``"auto"`` and ``"cuda"`` on a machine with several GPUs are spread over them by
    worker name (a local cluster names its workers 0, 1, ...), so that one-worker-per-GPU
    clusters use every GPU; any explicit device (``"cpu"``, ``"cuda:1"``) is kept.

    Parameters
    ----------
    device : str
        Requested device.
    gpu_count : int, optional
        CUDA devices on this machine (default: asked from torch).
    worker_name : object, optional
        Name of the Dask worker (default: the worker running this code, if any).

    Returns
    -------
    str
    """
    if device not in ("auto", "cuda"):
        return device
    if gpu_count is None:
        import torch

        gpu_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu_count <= 1:
        return device
    if worker_name is None:
        from distributed import get_worker

        try:
            worker_name = get_worker().name
        except ValueError:  # not inside a worker
            return device
    index = worker_name if isinstance(worker_name, int) else zlib.crc32(str(worker_name).encode())
    return f"cuda:{index % gpu_count}"


@dataclass(frozen=True)
class SegmenterSpec:
    """Picklable recipe for a segmenter: the settings plus the model checksum.

    Parameters
    ----------
    settings : SegmentationSettings
        Segmenter kind, weights file, device, batch size.
    model_sha256 : str
        Checksum of the weights (the cache key; computed once on the client).
    """

    settings: SegmentationSettings
    model_sha256: str

    @classmethod
    def from_settings(cls, settings: SegmentationSettings) -> SegmenterSpec:
        """Spec for ``settings``, hashing the weights file once."""
        return cls(settings=settings, model_sha256=settings.model_sha256())

    def cache_key(self) -> str:
        """``"<segmenter>:<model sha256>:<device>"``."""
        return f"{self.settings.segmenter}:{self.model_sha256}:{self.settings.device}"

    def load(self) -> ThresholdSegmenter | ModelSegmenter:
        """Build the segmenter; reads and checks the weights file for the network."""
        if self.settings.segmenter == "threshold":
            return ThresholdSegmenter()
        from antema_scale.segment import load_model

        device = worker_device(self.settings.device)
        model = load_model(self.settings.resolved_model_path(), device=device)
        return ModelSegmenter(
            model,
            batch_size=self.settings.batch_size,
            device=device,
            scale_adaptation=self.settings.scale_adaptation,
            flips=self.settings.flips,
            precision=self.settings.precision,
        )
