"""Write OCI image layout directories from Python, so tests have source images whose digests they know.

skopeo reads an `oci:DIR:TAG` layout as a user's build tool would leave it. Building the layout
here, byte for byte, lets a test compute every digest itself (manifest, config, each gzip'd tar
layer, an index and its children) and then check that a registry round trip kept them all, and
that the files inside the layers are the ones that went in.

Everything is deterministic (fixed tar metadata, gzip mtime 0), so the same `seed` gives the same
digests; a different `seed` gives different blobs, so tests sharing a server cannot hide a bug
behind blobs another test already pushed.

    LAYOUT/
    ├── oci-layout                {"imageLayoutVersion": "1.0.0"}
    ├── index.json                one descriptor per tag (annotation org.opencontainers.image.ref.name)
    └── blobs/sha256/<hex>        manifests, indexes, configs, layers
"""

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.client import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, sha256

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"


def canonical_json(value: Any) -> bytes:
    """Compact, sorted JSON: stable bytes, hence stable digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with the media type a descriptor gives them."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class Image:
    """One single-platform image: manifest, config and layers, plus the files the layers hold."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    files: dict[str, bytes]
    platform: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        return [self.manifest, self.config, *self.layers]

    def blob_digests(self) -> set[str]:
        """Config and layer digests: what a registry stores as blobs for this manifest."""
        return {self.config.digest, *(layer.digest for layer in self.layers)}


@dataclass(frozen=True)
class ImageIndex:
    """A multi-architecture image: an OCI index over one image per platform."""

    index: Blob
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.index.digest

    def blobs(self) -> list[Blob]:
        return [self.index, *(blob for image in self.images.values() for blob in image.blobs())]


def layer_tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A gzip'd tar of regular files with fixed metadata, as an image layer."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def layer_files(tar_gz: bytes) -> dict[str, bytes]:
    """The regular files in a gzip'd tar layer, to check a pulled layer holds what was pushed."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(tar_gz)), mode="r:") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name] = extracted.read()
    return files


def make_image(seed: str, platform: str = "linux/amd64", layer_count: int = 2) -> Image:
    """An image whose layers hold files naming `seed` and `platform`, so each image is distinct."""
    os_name, architecture = platform.split("/", 1)
    layer_maps = [
        {
            f"etc/cargobay/layer{n}.txt": f"{seed} {platform} layer {n}\n".encode(),
            f"usr/share/cargobay/{seed}-{n}.bin": hashlib.sha512(f"{seed}/{platform}/{n}".encode()).digest()
            * 64,
        }
        for n in range(layer_count)
    ]
    tars = [layer_tar_gz(files) for files in layer_maps]
    diff_ids = [sha256(gzip.decompress(tar)) for tar in tars]
    config = Blob(
        OCI_CONFIG,
        canonical_json(
            {
                "architecture": architecture,
                "os": os_name,
                "config": {"Cmd": ["/bin/sh"], "Labels": {"cargobay.test.seed": seed}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ),
    )
    layers = tuple(Blob(OCI_LAYER, tar) for tar in tars)
    manifest = Blob(
        OCI_MANIFEST,
        canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor() for layer in layers],
            }
        ),
    )
    files = {name: content for layer_map in layer_maps for name, content in layer_map.items()}
    return Image(manifest, config, layers, files, platform)


def make_index(seed: str, platforms: Sequence[str] = ("linux/amd64", "linux/arm64")) -> ImageIndex:
    """A multi-architecture index with one distinct image per platform."""
    images = {
        platform: make_image(f"{seed}-{platform.replace('/', '-')}", platform) for platform in platforms
    }
    manifests = []
    for platform, image in images.items():
        os_name, architecture = platform.split("/", 1)
        manifests.append(image.manifest.descriptor(platform={"architecture": architecture, "os": os_name}))
    index = Blob(
        OCI_INDEX, canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    )
    return ImageIndex(index, images)


def write_layout(layout: Path, tagged: Mapping[str, Image | ImageIndex]) -> None:
    """Write an OCI layout holding each image or index under its tag."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    top = []
    for tag, image in tagged.items():
        for blob in image.blobs():
            (blobs / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
        head = image.manifest if isinstance(image, Image) else image.index
        top.append(head.descriptor(annotations={REF_NAME: tag}))
    (layout / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": top}))


def read_blob(layout: Path, digest: str) -> bytes:
    """A blob from an OCI layout (ours or one skopeo wrote), checked against its digest."""
    data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert sha256(data) == digest, f"{layout}: blob {digest} does not match its content"
    return data


def tagged_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    """The index.json descriptor of `tag` in an OCI layout."""
    index = json.loads((layout / "index.json").read_bytes())
    found = [d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) == tag]
    assert len(found) == 1, f"{layout}: expected one descriptor tagged {tag!r}, index.json: {index}"
    return dict(found[0])


def layout_digests(layout: Path) -> Iterator[str]:
    """Every blob digest present in an OCI layout."""
    for path in sorted((layout / "blobs" / "sha256").iterdir()):
        yield "sha256:" + path.name
