"""Typed errors of the segmentation step."""

from __future__ import annotations

__all__ = ["ImageInputError"]


class ImageInputError(ValueError):
    """An image that :func:`antema_scale.segment.predict` cannot segment.

    Parameters
    ----------
    index : int
        Position of the image in the call.
    reason : str
        What is wrong with it (pixel size out of reach, NaN values, ...).
    """

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"image {index}: {reason}")

    def __reduce__(self) -> tuple[type[ImageInputError], tuple[int, str]]:
        """Pickle by (index, reason) so the error crosses Dask worker boundaries intact."""
        return (type(self), (self.index, self.reason))
