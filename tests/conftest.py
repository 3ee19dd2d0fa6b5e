"""Fixtures: real cargobay server processes on loopback ports."""

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import RegistryServer, start_server

_names = itertools.count()
_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def report_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a figure the test measured (rates, latencies, memory): pytest hides what passing
    tests print, so the figures are printed together at the end of the run, where CI keeps them."""
    figures = request.config.stash.setdefault(_FIGURES, [])

    def report(text: str) -> None:
        figures.append(f"{request.node.name}:\n  " + text.strip().replace("\n", "\n  "))

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section("figures measured")
        for figure in figures:
            terminalreporter.write_line(figure)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One server with htpasswd auth and deletion on, shared by a test module."""
    server = start_server(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RegistryServer]]:
    """Start servers with their own settings; all stop when the test ends."""
    started: list[RegistryServer] = []

    def start(**options: Any) -> RegistryServer:
        workdir = options.pop("workdir", tmp_path / f"server{len(started)}")
        server = start_server(workdir, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses, so tests can share one server."""
    return f"test/repo{next(_names)}"
