"""The Dask pipeline: many micrographs -> one particle table, on a laptop or a cluster.

Main entry points: :func:`analyze` (returns the merged particle table) and
:func:`run_analysis` (returns every table of the run, see :class:`RunResult`). Modules:

- :mod:`~antema_scale.pipeline.cluster` -- local / existing / jobqueue / Kubernetes clusters;
- :mod:`~antema_scale.pipeline.model_plugin` -- one segmentation model per worker process;
- :mod:`~antema_scale.pipeline.tasks` -- the per-image task functions;
- :mod:`~antema_scale.pipeline.graph` -- futures submitted in a bounded sliding window;
- :mod:`~antema_scale.pipeline.results` -- atomic per-image results, resume keys, merging;
- :mod:`~antema_scale.pipeline.manifest` -- inputs, parameters, model, versions, hardware.
"""

from antema_scale.pipeline.analyze import ImageFailedError, RunResult, analyze, run_analysis
from antema_scale.pipeline.cluster import (
    ClusterBackendMissingError,
    ClusterConfigError,
    ClusterSpec,
    NoWorkersError,
)
from antema_scale.pipeline.settings import PipelineOptionError, SegmentationSettings

__all__ = [
    "ClusterBackendMissingError",
    "ClusterConfigError",
    "ClusterSpec",
    "ImageFailedError",
    "NoWorkersError",
    "PipelineOptionError",
    "RunResult",
    "SegmentationSettings",
    "analyze",
    "run_analysis",
]
