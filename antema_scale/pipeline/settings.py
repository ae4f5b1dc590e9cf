"""What a run is asked to do: segmentation settings and the hash that identifies a result.

A result of one image is reusable by a later run exactly when the image (its sha256), the
parameters (:func:`parameter_hash`) and the model (its sha256) are the same; that triple
is the image's *result key* (:func:`result_key`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from antema_scale.segment.precision import PRECISIONS

SegmenterName = Literal["model", "threshold"]

#: Segmenters the pipeline knows, in the order of the ``--segmenter`` help.
SEGMENTERS: tuple[str, ...] = ("model", "threshold")

#: Model fingerprint used by the classical threshold segmenter (it has no weights file).
THRESHOLD_MODEL_ID = "threshold-segmenter"


class PipelineOptionError(ValueError):
    """An option given to the pipeline is unknown or has an invalid value."""


def file_sha256(path: str | Path, *, block_bytes: int = 1 << 20) -> str:
    """Hex sha256 of the bytes of the file at ``path``.

    Parameters
    ----------
    path : str or Path
        File to hash.
    block_bytes : int
        Read size in bytes.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class SegmentationSettings:
    """How images are segmented into particle / background.

    Parameters
    ----------
    segmenter : {"model", "threshold"}
        ``"model"`` runs the DeepLabV3+ network (:func:`antema_scale.segment.predict`),
        ``"threshold"`` the classical Gaussian + threshold baseline
        (:func:`antema_scale.segment.threshold_segment`).
    model_path : str or None
        Weights file of the network; ``None`` is the model shipped with the package.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    batch_size : int
        Tiles per forward pass of the network.
    images_per_task : int
        Images segmented together by one task (batches across images on a GPU).
    frames_per_task : int
        Movies with more frames are split into chunks of this many frames, each its own
        task and result file (bounded memory, frames spread over workers).
    scale_adaptation : bool
        Network only: segment images of small particles a second time on a finer grid
        (see :mod:`antema_scale.segment.inference`, *Scale adaptation*); the frames of a
        movie share one decision, taken from up to three sample frames.
    flips : {8, 4, 2, 1}
        Network only: mirrored views averaged per tile (*Flip averaging*; 1 = fastest).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Network only: autocast type (*Precision* in :mod:`antema_scale.segment.inference`):
        ``"auto"`` = bfloat16/float16 on CUDA, float32 on the CPU; ``"bf16"`` is faster on
        CPUs with native bfloat16 (AVX512-BF16/AMX).
    """

    segmenter: SegmenterName = "model"
    model_path: str | None = None
    device: str = "auto"
    batch_size: int = 8
    images_per_task: int = 1
    frames_per_task: int = 16
    scale_adaptation: bool = True
    flips: int = 8
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTERS:
            raise PipelineOptionError(
                f"unknown segmenter {self.segmenter!r}; choose one of {', '.join(SEGMENTERS)}"
            )
        if self.batch_size < 1:
            raise PipelineOptionError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.flips not in (1, 2, 4, 8):
            raise PipelineOptionError(f"flips must be 1, 2, 4 or 8, got {self.flips}")
        if self.precision not in PRECISIONS:
            raise PipelineOptionError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.frames_per_task < 1:
            raise PipelineOptionError(f"frames_per_task must be >= 1, got {self.frames_per_task}")
        if self.images_per_task < 1:
            raise PipelineOptionError(f"images_per_task must be >= 1, got {self.images_per_task}")
        if self.model_path is not None and not Path(self.model_path).is_file():
            raise PipelineOptionError(f"model file {self.model_path!r} does not exist")

    def resolved_model_path(self) -> Path | None:
        """The weights file this run uses (the shipped default when ``model_path`` is None).

        Returns
        -------
        Path or None
            ``None`` for the threshold segmenter.
        """
        if self.segmenter == "threshold":
            return None
        if self.model_path is not None:
            return Path(self.model_path)
        from antema_scale.segment import default_model_path

        return Path(default_model_path())

    def model_sha256(self) -> str:
        """sha256 of the weights file, or :data:`THRESHOLD_MODEL_ID` for the threshold segmenter."""
        path = self.resolved_model_path()
        return THRESHOLD_MODEL_ID if path is None else file_sha256(path)

    def result_parameters(self) -> dict[str, Any]:
        """The settings that change a result (device and batching do not)."""
        if self.segmenter == "model":
            return {
                "segmenter": self.segmenter,
                "scale_adaptation": self.scale_adaptation,
                "movie_scale": "one decision per movie",
                "flips": self.flips,
                "precision": self.precision,
            }
        return {"segmenter": self.segmenter}


def options_as_dict(options: Any) -> dict[str, Any]:
    """JSON-safe dict of a dataclass of options (tuples become lists, paths strings).

    Parameters
    ----------
    options : dataclass instance or Mapping
        E.g. :class:`antema_scale.particles.AnalysisOptions`.

    Returns
    -------
    dict
        Field name to value.
    """
    if dataclasses.is_dataclass(options) and not isinstance(options, type):
        raw = dataclasses.asdict(options)
    elif isinstance(options, Mapping):
        raw = dict(options)
    else:
        raise PipelineOptionError(
            f"cannot record options of type {type(options).__name__}; expected a dataclass"
        )
    return json.loads(json.dumps(raw, default=str, sort_keys=True))


def parameter_hash(segmentation: SegmentationSettings, analysis_options: Any) -> str:
    """Hash (16 hex characters) of every parameter that changes a per-image result.

    The package version is included, so results of another release are recomputed.

    Parameters
    ----------
    segmentation : SegmentationSettings
        Segmentation settings (device and batch size are excluded: they do not change
        the result).
    analysis_options : dataclass
        The particle-analysis options.

    Returns
    -------
    str
    """
    from antema_scale import __version__

    payload = {
        "segmentation": segmentation.result_parameters(),
        "analysis": options_as_dict(analysis_options),
        "antema_scale": __version__,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def result_key(image_sha256: str, parameters_hash: str, model_sha256: str) -> str:
    """Identity of one image's result: same key, same result (32 hex characters).

    Parameters
    ----------
    image_sha256 : str
        Checksum of the image (from the store index).
    parameters_hash : str
        :func:`parameter_hash` of the run.
    model_sha256 : str
        :meth:`SegmentationSettings.model_sha256`.
    """
    text = f"{image_sha256}|{parameters_hash}|{model_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]
