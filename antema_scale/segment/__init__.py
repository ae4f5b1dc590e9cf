"""Particle-vs-background segmentation: DeepLabV3+/ResNet-18 network, tiled inference,
classical threshold baseline, training and evaluation.

Public names (see ``docs/ARCHITECTURE.md``): :class:`DeepLabV3Plus`, :func:`load_model`,
:func:`predict`, :class:`Prediction`, :func:`threshold_segment`, :func:`train`,
:func:`evaluate`. Torch is imported lazily so that ``import antema_scale.segment`` stays
light for callers that only need the threshold baseline.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DeepLabV3Plus": "antema_scale.segment.network",
    "NetworkConfig": "antema_scale.segment.network",
    "NetworkEnsemble": "antema_scale.segment.network",
    "build_network": "antema_scale.segment.network",
    "SegmentationModel": "antema_scale.segment.model_file",
    "ModelFileError": "antema_scale.segment.model_file",
    "load_model": "antema_scale.segment.model_file",
    "save_model": "antema_scale.segment.model_file",
    "combine_models": "antema_scale.segment.model_file",
    "default_model_path": "antema_scale.segment.model_file",
    "Prediction": "antema_scale.segment.inference",
    "predict": "antema_scale.segment.inference",
    "Preprocessing": "antema_scale.segment.preprocess",
    "threshold_segment": "antema_scale.segment.threshold",
    "TrainConfig": "antema_scale.segment.train",
    "train": "antema_scale.segment.train",
    "evaluate": "antema_scale.segment.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'antema_scale.segment' has no attribute {name!r}")
