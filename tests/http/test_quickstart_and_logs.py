"""The newcomer's path (`cargobay quickstart`) and what the server logs."""

import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.client import errors_of, push_image
from tests.support.datadir import blob_data_path
from tests.support.server import RegistryServer, free_port


def test_quickstart_prints_a_login_that_works(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cargobay",
            "quickstart",
            "--dir",
            str(tmp_path),
            "--addr",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = "".join(process.stdout.readline() for _ in range(4))
        match = re.search(r"login:\s+(\S+) / (\S+)", banner)
        assert match, banner
        user, password = match.groups()
        deadline, status = time.monotonic() + 15, None
        while status is None and time.monotonic() < deadline:
            try:
                status = requests.get(f"http://127.0.0.1:{port}/v2/", auth=(user, password)).status_code
            except requests.ConnectionError:
                time.sleep(0.1)
        assert status == 200
        assert requests.get(f"http://127.0.0.1:{port}/v2/").status_code == 401
        assert (tmp_path / "registry").is_dir()
        assert oct((tmp_path / "login.txt").stat().st_mode & 0o777) == "0o600"
    finally:
        process.terminate()
        process.wait(10)


def test_one_access_log_line_per_request(registry: RegistryServer) -> None:
    registry.session().get(f"{registry.url}/v2/_catalog?n=7")
    requests.get(f"{registry.url}/v2/")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "user=-" not in registry.log():
        time.sleep(0.05)
    log = registry.log()
    assert re.search(r'"GET /v2/_catalog\?n=7" 200 \d+ [\d.]+ms user=alice', log)
    assert re.search(r'"GET /v2/" 401 \d+ [\d.]+ms user=-', log)


def test_errors_never_reach_the_client_as_tracebacks(registry: RegistryServer) -> None:
    response = registry.session().put(
        f"{registry.url}/v2/x/manifests/latest", data=b"\xff\xfe garbage", headers={"Content-Type": "a/b"}
    )
    assert response.status_code == 400
    assert "Traceback" not in response.text


def test_an_internal_error_is_a_json_500_and_a_logged_traceback(registry: RegistryServer) -> None:
    """Storage broken under the server (a blob's data file turned into a symlink loop)."""
    session = registry.session()
    image = push_image(session, registry.url, "broken/storage", "v1")
    data = blob_data_path(registry.root, image.digest)
    data.unlink()
    data.symlink_to(data)
    response = session.get(f"{registry.url}/v2/broken/storage/manifests/v1")
    assert response.status_code == 500
    assert errors_of(response) == ["UNKNOWN"]
    assert "Traceback" not in response.text
    assert "symbolic links" not in response.text
    assert "unexpected error serving GET /v2/broken/storage/manifests/v1" in registry.log()
    assert "Traceback" in registry.log()
