"""The newcomer's path (`cargobay quickstart`) and what the server logs."""

import re
import subprocess
import sys
import time
from pathlib import Path

import requests

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
