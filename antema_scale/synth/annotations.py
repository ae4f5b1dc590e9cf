"""Burned-in annotations of exported micrographs: scale bar, its label, a panel letter.

Images taken from papers and instrument exports often carry these (see the EMPS data);
a segmentation network should learn that they are not particles, so they are drawn
*after* the noise, as the export software would, and never enter the truth.
"""

from __future__ import annotations

import numpy as np

#: A 3 x 5 bitmap font: rows top to bottom, "1" = ink.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    "n": ("000", "110", "101", "101", "101"),
    "m": ("000", "110", "111", "101", "101"),
    "a": ("000", "111", "011", "101", "111"),
    "b": ("100", "100", "111", "101", "111"),
    "c": ("000", "111", "100", "100", "111"),
    "d": ("001", "001", "111", "101", "111"),
    ".": ("000", "000", "000", "000", "010"),
    " ": ("000", "000", "000", "000", "000"),
    "(": ("010", "100", "100", "100", "010"),
    ")": ("010", "001", "001", "001", "010"),
}


def text_bitmap(text: str, scale: int) -> np.ndarray:
    """Boolean picture of ``text`` in the 3 x 5 font, each font pixel ``scale`` px wide."""
    columns = []
    for char in text:
        glyph = np.array([[c == "1" for c in row] for row in _GLYPHS[char]], dtype=bool)
        columns += [glyph, np.zeros((5, 1), dtype=bool)]
    bitmap = np.hstack(columns[:-1]) if columns else np.zeros((5, 0), dtype=bool)
    return np.kron(bitmap, np.ones((scale, scale), dtype=bool))


def scale_bar_length_nm(field_nm: float) -> float:
    """A round length (1, 2 or 5 times a power of ten) near a fifth of the field, nm."""
    target = field_nm / 5.0
    power = 10.0 ** np.floor(np.log10(target))
    return float(max((m * power for m in (1.0, 2.0, 5.0) if m * power <= target), default=power))


def _paste(image: np.ndarray, mask: np.ndarray, row: int, col: int, value: float) -> None:
    rows, cols = image.shape
    h = min(mask.shape[0], rows - row)
    w = min(mask.shape[1], cols - col)
    if h > 0 and w > 0:
        image[row : row + h, col : col + w][mask[:h, :w]] = value


def add_annotations(image: np.ndarray, rng: np.random.Generator, pixel_size_nm: float) -> None:
    """Burn a scale bar with its label (and sometimes a panel letter) into ``image`` in place.

    The ink is either brighter or darker than everything in the image, on an optional
    box of the opposite colour, as export software draws it.
    """
    rows, cols = image.shape
    lo, hi = np.percentile(image[:: max(rows // 128, 1), :: max(cols // 128, 1)], [0.5, 99.5])
    span = max(hi - lo, 1e-6)
    ink, paper = (
        (hi + 0.2 * span, lo - 0.1 * span)
        if rng.random() < 0.5
        else (lo - 0.2 * span, hi + 0.1 * span)
    )
    scale = max(1, int(round(min(rows, cols) * rng.uniform(0.006, 0.012))))
    length_nm = scale_bar_length_nm(cols * pixel_size_nm)
    length_px = max(int(round(length_nm / pixel_size_nm)), 4)
    label = text_bitmap(f"{length_nm:g} nm", scale)
    bar_height = max(2, int(round(rows * rng.uniform(0.008, 0.02))))
    margin = max(3, int(round(min(rows, cols) * 0.03)))
    width = max(length_px, label.shape[1])
    height = label.shape[0] + scale * 2 + bar_height
    left = margin if rng.random() < 0.5 else max(cols - margin - width, 0)
    top = max(rows - margin - height, 0)
    if rng.random() < 0.4:  # a box behind the scale bar
        pad = scale * 2
        box = np.ones((height + 2 * pad, width + 2 * pad), dtype=bool)
        _paste(image, box, max(top - pad, 0), max(left - pad, 0), paper)
    _paste(image, label, top, left + (width - label.shape[1]) // 2, ink)
    _paste(
        image,
        np.ones((bar_height, length_px), dtype=bool),
        top + label.shape[0] + 2 * scale,
        left + (width - length_px) // 2,
        ink,
    )
    if rng.random() < 0.5:  # panel letter in the top-left corner
        letter = text_bitmap(str(rng.choice(["(a)", "(b)", "(c)", "(d)", "a", "b"])), scale + 1)
        _paste(image, letter, margin, margin, ink)
