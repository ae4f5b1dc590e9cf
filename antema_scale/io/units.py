"""Unit strings found in microscope files, and their conversion to nanometres.

Vendors spell units in many ways: ``m``, ``mm``, ``µm`` (micro sign), ``μm`` (Greek mu),
``um``, ``micron``, ``nm``, ``n_m`` (Berkeley EMD), ``Å``/``A``/``Angstrom``, ``pm``.
:func:`classify_unit` tells what kind of quantity a unit string measures, so the readers
can refuse diffraction patterns (reciprocal or angular units) and spectra (energy units),
and :func:`nm_per_unit` gives the factor from a length unit to nanometres.
"""

from __future__ import annotations

import enum
import re

__all__ = ["UnitKind", "classify_unit", "nm_per_unit", "seconds_per_unit"]


class UnitKind(enum.Enum):
    """What a unit string measures."""

    LENGTH = "length"
    RECIPROCAL = "reciprocal length"
    ANGLE = "angle"
    ENERGY = "energy"
    TIME = "time"
    NONE = "none"  # empty, "pixel", or a string we do not recognise


_NM_PER_LENGTH_UNIT: dict[str, float] = {
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "a": 0.1,
    "ang": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "pm": 1e-3,
    "picometer": 1e-3,
    "picometre": 1e-3,
}

_SECONDS_PER_TIME_UNIT: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "ns": 1e-9,
    "min": 60.0,
}

_ANGLE_UNITS = frozenset({"rad", "mrad", "urad", "deg", "degree", "degrees"})
_ENERGY_UNITS = frozenset({"ev", "kev", "mev"})

# Micro sign (U+00B5), Greek mu (U+03BC); Angstrom sign (U+212B), A-ring (U+00C5).
_CHARACTER_SPELLINGS = {"\u00b5": "u", "\u03bc": "u", "\u212b": "a", "\u00c5": "a"}
_RECIPROCAL_PATTERN = re.compile(r"^(1/(?P<a>.+)|(?P<b>.+?)(\^?-1|\u207b\u00b9))$")


def _canonical(unit: str) -> str:
    text = unit.strip()
    for character, spelling in _CHARACTER_SPELLINGS.items():
        text = text.replace(character, spelling)
    return text.replace("_", "").replace(" ", "").lower()


def _reciprocal_base(canonical: str) -> str | None:
    match = _RECIPROCAL_PATTERN.match(canonical)
    if match is None:
        return None
    return match.group("a") or match.group("b")


def classify_unit(unit: str | bytes | None) -> UnitKind:
    """Say what kind of quantity a unit string from a file measures.

    Parameters
    ----------
    unit : str, bytes or None
        The unit string as stored in the file (``"n_m"``, ``"µm"``, ``"1/nm"``, ...).

    Returns
    -------
    UnitKind
        ``LENGTH`` for real-space lengths, ``RECIPROCAL`` for ``1/length`` (diffraction,
        FFT), ``ANGLE`` for scattering angles, ``ENERGY`` for spectra, ``TIME`` for
        time axes, ``NONE`` for empty, pixel or unrecognised strings.
    """
    if unit is None:
        return UnitKind.NONE
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", errors="replace")
    canonical = _canonical(unit)
    if canonical in _NM_PER_LENGTH_UNIT:
        return UnitKind.LENGTH
    base = _reciprocal_base(canonical)
    if base is not None and base in _NM_PER_LENGTH_UNIT:
        return UnitKind.RECIPROCAL
    if canonical in _ANGLE_UNITS:
        return UnitKind.ANGLE
    if canonical in _ENERGY_UNITS:
        return UnitKind.ENERGY
    if canonical in _SECONDS_PER_TIME_UNIT:
        return UnitKind.TIME
    return UnitKind.NONE


def nm_per_unit(unit: str | bytes) -> float:
    """Nanometres in one ``unit`` of length.

    Parameters
    ----------
    unit : str or bytes
        A length unit string, in any spelling :func:`classify_unit` accepts.

    Returns
    -------
    float
        The factor that turns a length in ``unit`` into nanometres (``"Å"`` -> 0.1).

    Raises
    ------
    KeyError
        If ``unit`` is not a length unit.
    """
    return _factor(unit, _NM_PER_LENGTH_UNIT, "length")


def seconds_per_unit(unit: str | bytes) -> float:
    """Seconds in one ``unit`` of time (``"ms"`` -> 1e-3).

    Raises
    ------
    KeyError
        If ``unit`` is not a time unit.
    """
    return _factor(unit, _SECONDS_PER_TIME_UNIT, "time")


def _factor(unit: str | bytes, table: dict[str, float], kind: str) -> float:
    """Look ``unit`` up in a conversion ``table`` of ``kind`` units (KeyError if absent)."""
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", errors="replace")
    canonical = _canonical(unit)
    if canonical not in table:
        raise KeyError(f"{unit!r} is not a {kind} unit")
    return table[canonical]
