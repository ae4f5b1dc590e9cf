"""Stage drift of an in-situ movie, in nm.

Two estimates, both returned as a table indexed by frame with the cumulative drift
(``drift_y_nm``, ``drift_x_nm``) of every frame relative to the first one:

* :func:`drift_from_links` uses particles already linked across frames (the median
  displacement of linked particles between consecutive frames). The median, unlike
  ``trackpy.compute_drift``'s mean, is not pulled by a few particles that jump because
  they coalesce or are mis-segmented.
* :func:`drift_from_images` registers consecutive frames by phase cross-correlation
  (``skimage.registration.phase_cross_correlation``). It needs the pixels but no
  particles, so it also works when the drift between frames exceeds the particle spacing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DRIFT_COLUMNS: tuple[str, str] = ("drift_y_nm", "drift_x_nm")


def zero_drift(frames: np.ndarray | pd.Index) -> pd.DataFrame:
    """A drift table of zeros for ``frames`` (integer frame indices)."""
    index = pd.Index(np.asarray(frames, dtype=np.int64), name="frame")
    return pd.DataFrame(0.0, index=index, columns=list(DRIFT_COLUMNS))


def drift_from_links(
    linked: pd.DataFrame,
    *,
    link_column: str = "particle",
    pos_columns: tuple[str, str] = ("centroid_y_nm", "centroid_x_nm"),
    frames: np.ndarray | pd.Index | None = None,
) -> pd.DataFrame:
    """Cumulative drift from the median displacement of linked particles.

    Parameters
    ----------
    linked : pandas.DataFrame
        Rows with ``frame``, position columns in nm and a link label column.
    link_column : str
        Column naming which rows belong to the same particle (``particle`` from trackpy).
    pos_columns : tuple of str
        Position columns (y, x) in nm.
    frames : array of int, optional
        All frame indices to report; frames without linked pairs take the drift of the
        frame before them (no movement assumed). Defaults to the frames of ``linked``.

    Returns
    -------
    pandas.DataFrame
        Index ``frame``; columns ``drift_y_nm``, ``drift_x_nm`` (nm, first frame = 0).
    """
    if frames is None:
        frames = np.sort(pd.unique(linked["frame"]))
    index = pd.Index(np.sort(np.asarray(frames, dtype=np.int64)), name="frame")
    ordered = linked.sort_values([link_column, "frame"])
    same = ordered[link_column].eq(ordered[link_column].shift())
    step = ordered["frame"].diff()
    steps = pd.DataFrame(
        {
            "frame": ordered["frame"],
            "dy": ordered[pos_columns[0]].diff(),
            "dx": ordered[pos_columns[1]].diff(),
        }
    )[same & (step == 1)]
    per_frame = steps.groupby("frame")[["dy", "dx"]].median().reindex(index).fillna(0.0)
    if len(index):
        per_frame.iloc[0] = 0.0
    cumulative = per_frame.cumsum()
    cumulative.columns = list(DRIFT_COLUMNS)
    return cumulative


def drift_from_images(
    frames: np.ndarray,
    pixel_size_nm: float | tuple[float, float],
    *,
    upsample_factor: int = 10,
    frame_indices: np.ndarray | None = None,
) -> pd.DataFrame:
    """Cumulative drift by phase cross-correlation of consecutive frames.

    Parameters
    ----------
    frames : numpy.ndarray
        Movie as a ``(frame, y, x)`` array (any real dtype).
    pixel_size_nm : float or (float, float)
        Pixel size in nm (isotropic, or ``(y, x)``).
    upsample_factor : int
        Sub-pixel precision of the registration (1/upsample_factor px).
    frame_indices : array of int, optional
        Frame index of each plane; defaults to ``0..n-1``.

    Returns
    -------
    pandas.DataFrame
        Index ``frame``; columns ``drift_y_nm``, ``drift_x_nm`` (nm, first frame = 0): the
        position of the scene in each frame relative to the first frame.

    Raises
    ------
    ValueError
        When ``frames`` is not 3-D or the pixel size is not positive.
    """
    from skimage.registration import phase_cross_correlation

    stack = np.asarray(frames)
    if stack.ndim != 3:
        raise ValueError(f"expected a (frame, y, x) movie array, got shape {stack.shape}")
    size_y, size_x = (pixel_size_nm, pixel_size_nm) if np.isscalar(pixel_size_nm) else pixel_size_nm
    if not (float(size_y) > 0 and float(size_x) > 0):
        raise ValueError(f"pixel size must be positive nm, got {pixel_size_nm!r}")
    indices = (
        np.arange(len(stack))
        if frame_indices is None
        else np.asarray(frame_indices, dtype=np.int64)
    )
    steps = np.zeros((len(stack), 2))
    for i in range(1, len(stack)):
        # shift that registers the moving frame onto the reference is minus its motion
        shift, _, _ = phase_cross_correlation(
            stack[i - 1].astype(np.float32),
            stack[i].astype(np.float32),
            upsample_factor=upsample_factor,
        )
        steps[i] = -np.asarray(shift, dtype=float)
    cumulative = np.cumsum(steps, axis=0) * np.array([float(size_y), float(size_x)])
    return pd.DataFrame(
        cumulative, index=pd.Index(indices, name="frame"), columns=list(DRIFT_COLUMNS)
    )
