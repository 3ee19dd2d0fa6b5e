"""Run the real skopeo against loopback registries, isolated from the machine's containers config.

skopeo reads /etc/containers/policy.json before any copy, and a fresh CI machine may not have
one (or may have a restrictive one), so every call gets its own accept-anything policy file.
Credentials are always passed on the command line, never read from an auth file, so a user's
`~/.docker/config.json` cannot make a test pass or fail.
"""

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.oci_layout import Image, layer_files
from tests.support.tools import require_tool

COMMAND_SECONDS = 120


@dataclass(frozen=True)
class Skopeo:
    binary: str
    policy: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run `skopeo ARGS` (bounded in time); with `check`, a failure raises with skopeo's stderr.

        Output stays bytes: `inspect --raw` prints a manifest whose digest must not change.
        """
        command = [
            self.binary,
            "--policy",
            str(self.policy),
            "--command-timeout",
            f"{COMMAND_SECONDS}s",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, timeout=COMMAND_SECONDS + 10, check=False)
        if check and result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise AssertionError(f"{' '.join(command)} exited with {result.returncode}:\n{stderr}")
        return result

    def copy(
        self, source: str, dest: str, creds: tuple[str, str], *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """`skopeo copy` with the same credentials for whichever side is a plain-HTTP registry."""
        options: list[str] = []
        if source.startswith("docker://"):
            options += ["--src-tls-verify=false", f"--src-creds={creds[0]}:{creds[1]}"]
        if dest.startswith("docker://"):
            options += ["--dest-tls-verify=false", f"--dest-creds={creds[0]}:{creds[1]}"]
        return self.run("copy", *options, *extra, source, dest, check=check)

    def inspect(self, image: str, creds: tuple[str, str], *extra: str) -> dict[str, Any]:
        result = self.run("inspect", "--tls-verify=false", f"--creds={creds[0]}:{creds[1]}", *extra, image)
        inspected: dict[str, Any] = json.loads(result.stdout)
        return inspected

    def inspect_raw(self, image: str, creds: tuple[str, str]) -> bytes:
        """The manifest bytes as the registry serves them (`skopeo inspect --raw`)."""
        result = self.run("inspect", "--raw", "--tls-verify=false", f"--creds={creds[0]}:{creds[1]}", image)
        return result.stdout


def find_skopeo(workdir: Path) -> Skopeo:
    """The real skopeo with a private policy file; fails in CI / skips elsewhere when missing."""
    binary = require_tool("skopeo")
    workdir.mkdir(parents=True, exist_ok=True)
    policy = workdir / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return Skopeo(binary, policy)


def dir_blobs(out: Path) -> dict[str, bytes]:
    """The blobs of a skopeo `dir:` copy by digest (files named by hex), each checked against its name."""
    blobs = {}
    for path in out.iterdir():
        if path.name in ("manifest.json", "version"):
            continue
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == path.name, f"{path} does not match its name"
        blobs["sha256:" + path.name] = data
    return blobs


def assert_dir_copy_is(out: Path, image: Image) -> None:
    """A `dir:` copy holds the image's exact manifest bytes, its blobs, and the files in its layers."""
    assert (out / "manifest.json").read_bytes() == image.manifest.data, (
        f"{out}: manifest is not {image.digest}"
    )
    blobs = dir_blobs(out)
    assert set(blobs) == image.blob_digests(), f"{out}: blobs {sorted(blobs)}"
    pulled_files: dict[str, bytes] = {}
    for layer in image.layers:
        pulled_files.update(layer_files(blobs[layer.digest]))
    assert pulled_files == image.files, f"{out}: the layers hold other files"
