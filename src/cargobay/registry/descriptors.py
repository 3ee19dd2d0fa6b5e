"""Descriptors: the typed pointers (media type, digest, size) that manifests are made of."""

from dataclasses import dataclass, field
from typing import Any

from cargobay.registry.digests import Digest
from cargobay.registry.errors import DigestInvalid, ManifestInvalid


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any, where: str) -> "Descriptor":
        """Parse the JSON object at `where` (e.g. `layers[2]`), or raise `ManifestInvalid`."""
        if not isinstance(value, dict):
            raise ManifestInvalid(f"{where} must be a descriptor object")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
        if not isinstance(digest, str):
            raise ManifestInvalid(f"{where}.digest must be a string")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestInvalid(f"{where}.size must be a non-negative integer")
        try:
            parsed = Digest.parse(digest)
        except DigestInvalid as error:
            raise ManifestInvalid(f"{where}.digest: {error.message}") from None
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestInvalid(f"{where}.annotations must map strings to strings")
        urls = value.get("urls") or []
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestInvalid(f"{where}.urls must be a list of strings")
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestInvalid(f"{where}.artifactType must be a string")
        return cls(media_type, parsed, size, artifact_type, annotations, tuple(urls))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out
