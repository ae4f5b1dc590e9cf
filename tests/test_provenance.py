"""Hardware and software fingerprints recorded with every result."""

from __future__ import annotations

import platform

from antema_scale.provenance import git_revision, hardware_fingerprint, software_versions


def test_software_versions_reports_installed_and_missing_packages() -> None:
    versions = software_versions(("numpy", "surely-not-a-real-package-xyz"))
    import numpy

    assert versions["numpy"] == numpy.__version__
    assert versions["surely-not-a-real-package-xyz"] == "not installed"
    assert versions["python"] == platform.python_version()


def test_hardware_fingerprint_has_cpu_and_memory() -> None:
    info = hardware_fingerprint()
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert info["memory_gib"] > 0
    assert isinstance(info["gpus"], list)


def test_git_revision_is_a_sha_or_none(tmp_path) -> None:
    assert git_revision(tmp_path) is None
    rev = git_revision()
    assert rev is None or len(rev) == 40
