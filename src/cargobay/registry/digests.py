"""Content digests: parsing with the OCI grammar, and computing them.

`sha256` is what every client sends; `sha512` is supported as the OCI spec
allows. Other registered algorithms are refused rather than trusted unverified.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Literal, cast

from cargobay.registry.errors import DigestInvalid

Algorithm = Literal["sha256", "sha512"]

_HEX_LENGTH: dict[str, int] = {"sha256": 64, "sha512": 128}
# OCI: algorithm-component(["+._-"] algorithm-component)* ":" encoded
_DIGEST = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, order=True)
class Digest:
    """A verified-syntax content digest such as `sha256:9f86d0…`."""

    algorithm: Algorithm
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> "Digest":
        """Parse `text`, raising `DigestInvalid` for anything the spec's grammar refuses."""
        match = _DIGEST.match(text)
        if match is None:
            raise DigestInvalid(f"invalid digest {text[:200]!r}")
        algorithm, encoded = match.groups()
        if algorithm not in _HEX_LENGTH:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512")
        if len(encoded) != _HEX_LENGTH[algorithm] or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise DigestInvalid(
                f"invalid {algorithm} digest {text[:200]!r}: "
                f"expected {_HEX_LENGTH[algorithm]} lowercase hex characters"
            )
        return cls(cast(Algorithm, algorithm), encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: Algorithm = "sha256") -> "Digest":
        """The digest of a small in-memory payload (manifests, configs)."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def is_digest(reference: str) -> bool:
    """True when a manifest reference is a digest rather than a tag."""
    return ":" in reference


def new_hasher(algorithm: Algorithm = "sha256") -> "hashlib._Hash":
    return hashlib.new(algorithm)
