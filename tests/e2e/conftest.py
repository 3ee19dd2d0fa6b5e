"""Fixtures for end-to-end tests with real clients."""

import pytest

from tests.support.skopeo import Skopeo, find_skopeo


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    """The real skopeo with a private accept-anything policy; fails in CI / skips elsewhere if missing."""
    return find_skopeo(tmp_path_factory.mktemp("skopeo"))
