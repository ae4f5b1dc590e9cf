"""Typed errors raised by the micrograph readers.

Every error is a :class:`MicrographError`, itself a :class:`ValueError`, so a pipeline
can catch one class and record ``type(err).__name__`` and ``str(err)`` as an error row.
Messages always name the file and say what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CorruptFileError",
    "EmptyImageError",
    "MicrographError",
    "MissingPixelSizeError",
    "NotAnImageError",
    "ReciprocalSpaceError",
    "UnknownFormatError",
]


class MicrographError(ValueError):
    """A file could not be turned into a calibrated micrograph.

    Parameters
    ----------
    path : str or pathlib.Path
        The file the problem is about.
    reason : str
        What is wrong, in words a microscopist understands.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[MicrographError], tuple[str, str]]:
        """Pickle by (path, reason) so errors cross Dask worker boundaries intact."""
        return (type(self), (self.path, self.reason))


class UnknownFormatError(MicrographError):
    """The file type is not one antema-scale can read (by suffix and content)."""


class CorruptFileError(MicrographError):
    """The file claims a known format but cannot be parsed (truncated, damaged)."""


class ReciprocalSpaceError(MicrographError):
    """The data is calibrated in reciprocal or angular units: a diffraction pattern or FFT."""


class MissingPixelSizeError(MicrographError):
    """No usable pixel size in the file and none given by the user."""


class NotAnImageError(MicrographError):
    """The data is not a 2-D image or a stack of images (a spectrum, a 4-D dataset, ...)."""


class EmptyImageError(MicrographError):
    """The image holds no information: zero size, constant, or NaN/inf pixels."""
