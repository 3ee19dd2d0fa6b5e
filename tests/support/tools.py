"""Find the real client binaries end-to-end tests need (skopeo, docker-registry, htpasswd).

TESTING.md's rule: a test whose component cannot start must fail with a clear reason in CI
(env CI=true, where the binaries are installed via apt and must be there), and may only skip,
saying why, when run elsewhere.
"""

import os
import shutil
from typing import NoReturn

import pytest

APT_PACKAGES = {"skopeo": "skopeo", "docker-registry": "docker-registry", "htpasswd": "apache2-utils"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """The path of binary `name`; fails the test in CI when it is missing, else skips it."""
    path = shutil.which(name)
    if path is not None:
        return path
    unavailable(f"`{name}` is not on PATH (install Debian package {APT_PACKAGES.get(name, name)!r})")


def unavailable(reason: str) -> NoReturn:
    """Fail in CI, where everything a test needs must be there; elsewhere skip, saying why."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(f"{reason}; this would fail in CI")
