"""antema-scale: size and shape of every nanoparticle in TEM/STEM micrographs, at scale.

The package is organised by pipeline stage, in the direction data flows:

- :mod:`antema_scale.io` -- microscope file readers (pixel size in nm) and the Zarr store;
- :mod:`antema_scale.synth` -- synthetic micrographs with exact ground truth;
- :mod:`antema_scale.segment` -- the DeepLabV3+ network, tiled inference, training;
- :mod:`antema_scale.particles` -- cleaning, convexity, UECS separation, measurements;
- :mod:`antema_scale.pipeline` -- the Dask graph over many images;
- :mod:`antema_scale.report` -- tables, statistics, figures and reports;
- :mod:`antema_scale.insitu` -- movies and particle tracking.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("antema-scale")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "analyze"]


def __getattr__(name: str) -> object:
    """Lazy ``antema_scale.analyze`` (the Dask pipeline is imported on first use only)."""
    if name == "analyze":
        from antema_scale.pipeline import analyze

        return analyze
    raise AttributeError(f"module 'antema_scale' has no attribute {name!r}")
