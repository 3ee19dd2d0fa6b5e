"""A self-signed certificate for TLS tests, made with the real openssl."""

import subprocess
from pathlib import Path

from tests.support.tools import require_tool


def self_signed_certificate(directory: Path, common_name: str, alt_names: str) -> tuple[Path, Path]:
    """A certificate for `alt_names` (e.g. `DNS:registry.example.com,IP:127.0.0.1`) valid
    for a day, and its key: (certificate, key), PEM files in `directory`."""
    certificate, key = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    subprocess.run(
        [
            require_tool("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            f"subjectAltName={alt_names}",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key
