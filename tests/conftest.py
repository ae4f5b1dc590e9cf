"""Shared test fixtures: where the real data beside the checkout lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def formats_dir(shared_data: Path) -> Path:
    """Real microscope files (dm3, dm4, ser/emi, emd, mrc, tif)."""
    path = shared_data / "formats"
    if not path.is_dir():
        pytest.skip("../shared/data/formats is not present")
    return path
