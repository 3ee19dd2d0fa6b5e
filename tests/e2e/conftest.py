"""Fixtures for end-to-end tests with real clients."""

from collections.abc import Iterator

import pytest

from tests.e2e.docker_engine import DockerEngine, running_engine, unavailable_reason
from tests.support.skopeo import Skopeo, find_skopeo
from tests.support.tools import unavailable


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    """The real skopeo with a private accept-anything policy; fails in CI / skips elsewhere if missing."""
    return find_skopeo(tmp_path_factory.mktemp("skopeo"))


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd for the session; fails in CI (CI=true) and skips elsewhere if it cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        unavailable(f"a Docker engine cannot run here: {reason}")
    with running_engine() as engine:
        yield engine
