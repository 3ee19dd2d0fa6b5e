"""`/v2/<name>/blobs/uploads/`: every way a client uploads, and every way it can get it wrong."""

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.support.client import errors_of, push_blob, sha256
from tests.support.server import PASSWORD, USER, RegistryServer


def start(session: requests.Session, url: str, repo: str) -> requests.Response:
    response = session.post(f"{url}/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response


def blob_exists(session: requests.Session, url: str, repo: str, digest: str) -> bool:
    return session.head(f"{url}/v2/{repo}/blobs/{digest}").status_code == 200


def test_post_answers_202_with_location_uuid_and_range(registry: RegistryServer, repo: str) -> None:
    response = start(registry.session(), registry.url, repo)
    uuid = response.headers["Docker-Upload-UUID"]
    assert response.headers["Location"] == f"{registry.url}/v2/{repo}/blobs/uploads/{uuid}"
    assert response.headers["Range"] == "0-0"
    assert response.headers["Content-Length"] == "0"


def test_monolithic_post_with_digest_creates_the_blob(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(5000)
    response = session.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, data=data
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    assert response.headers["Location"] == f"{registry.url}/v2/{repo}/blobs/{sha256(data)}"
    assert session.get(response.headers["Location"]).content == data


def test_monolithic_post_with_a_wrong_digest_stores_nothing(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    claimed = sha256(b"something else")
    response = session.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/", params={"digest": claimed}, data=b"actual"
    )
    assert response.status_code == 400
    assert errors_of(response) == ["DIGEST_INVALID"]
    assert not blob_exists(session, registry.url, repo, claimed)
    assert not list((registry.root / "docker/registry/v2/repositories" / repo / "_uploads").glob("*"))


def test_chunked_upload_with_content_range(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(300_000)
    location = start(session, registry.url, repo).headers["Location"]
    for offset in range(0, len(data), 100_000):
        chunk = data[offset : offset + 100_000]
        response = session.patch(
            location,
            data=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{offset + len(chunk) - 1}"
        location = response.headers["Location"]
    done = session.put(location, params={"digest": sha256(data)})
    assert done.status_code == 201
    assert session.get(f"{registry.url}/v2/{repo}/blobs/{sha256(data)}").content == data


def test_out_of_order_and_overlapping_chunks_get_416_and_change_nothing(
    registry: RegistryServer, repo: str
) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    first = session.patch(location, data=b"a" * 100, headers={"Content-Range": "0-99"})
    assert first.status_code == 202
    for bad_range in ["200-299", "50-149", "0-99"]:
        response = session.patch(location, data=b"b" * 100, headers={"Content-Range": bad_range})
        assert response.status_code == 416, bad_range
        assert errors_of(response) == ["RANGE_INVALID"]
        assert response.headers["Range"] == "0-99"
    status = session.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-99"
    done = session.put(location, params={"digest": sha256(b"a" * 100)})
    assert done.status_code == 201


def test_a_chunk_that_breaks_off_mid_body_leaves_the_upload_as_it_was(
    registry: RegistryServer, repo: str
) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    assert session.patch(location, data=b"a" * 100, headers={"Content-Range": "0-99"}).status_code == 202
    path = urlsplit(location)._replace(scheme="", netloc="").geturl()
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    chunk = os.urandom(8 << 20)  # several of the server's write blocks
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as client:
        client.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {registry.host}\r\nAuthorization: Basic {credentials}\r\n"
            f"Content-Range: 100-{100 + len(chunk) - 1}\r\nContent-Length: {len(chunk)}\r\n\r\n".encode()
            + chunk[: len(chunk) // 2]
        )
        time.sleep(0.5)  # the server has written part of the chunk when the client goes away
    deadline = time.monotonic() + 10
    while session.get(location).headers["Range"] != "0-99" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session.get(location).headers["Range"] == "0-99"
    resumed = session.patch(location, data=chunk, headers={"Content-Range": f"100-{100 + len(chunk) - 1}"})
    assert resumed.status_code == 202, resumed.text
    done = session.put(location, params={"digest": sha256(b"a" * 100 + chunk)})
    assert done.status_code == 201, done.text


def test_broken_content_range_is_400_and_changes_nothing(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    for bad in ["abc", "10-5", "bytes 1-", "-5"]:
        response = session.patch(location, data=b"xx", headers={"Content-Range": bad})
        assert response.status_code == 400, bad
        assert errors_of(response) == ["BLOB_UPLOAD_INVALID"]
    mismatch = session.patch(location, data=b"xyz", headers={"Content-Range": "0-9"})
    assert mismatch.status_code == 400
    assert session.get(location).headers["Range"] == "0-0"
    assert session.put(location, params={"digest": sha256(b"")}).status_code == 201


def test_streamed_patch_without_content_range_like_docker_push(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    pieces = [os.urandom(70_000) for _ in range(20)]
    location = start(session, registry.url, repo).headers["Location"]
    response = session.patch(location, data=iter(pieces))  # chunked transfer encoding
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{sum(map(len, pieces)) - 1}"
    data = b"".join(pieces)
    done = session.put(response.headers["Location"], params={"digest": sha256(data)})
    assert done.status_code == 201
    assert session.get(f"{registry.url}/v2/{repo}/blobs/{sha256(data)}").content == data


def test_put_with_the_last_chunk(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    session.patch(location, data=b"hello ", headers={"Content-Range": "0-5"})
    done = session.put(
        location,
        params={"digest": sha256(b"hello world")},
        data=b"world",
        headers={"Content-Range": "6-10"},
    )
    assert done.status_code == 201
    assert session.get(done.headers["Location"]).content == b"hello world"


def test_put_with_a_wrong_digest_is_400_and_cancels_the_upload(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    session.patch(location, data=b"payload")
    wrong = sha256(b"other payload")
    response = session.put(location, params={"digest": wrong})
    assert response.status_code == 400
    assert errors_of(response) == ["DIGEST_INVALID"]
    assert not blob_exists(session, registry.url, repo, wrong)
    assert not blob_exists(session, registry.url, repo, sha256(b"payload"))
    assert session.get(location).status_code == 404


def test_put_without_or_with_a_malformed_digest_is_400(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    assert errors_of(session.put(location)) == ["DIGEST_INVALID"]
    assert errors_of(session.put(location, params={"digest": "sha256:zz"})) == ["DIGEST_INVALID"]


def test_sha512_digests_are_supported(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(3000)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    location = start(session, registry.url, repo).headers["Location"]
    done = session.put(location, params={"digest": digest}, data=data)
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == digest
    assert session.get(f"{registry.url}/v2/{repo}/blobs/{digest}").content == data


def test_status_and_cancel(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    location = start(session, registry.url, repo).headers["Location"]
    session.patch(location, data=b"x" * 10)
    status = session.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-9"
    assert status.headers["Docker-Upload-UUID"] in location
    assert session.delete(location).status_code == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = session.request(method, location, params={"digest": sha256(b"x" * 10)})
        assert response.status_code == 404, method
        assert errors_of(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_unknown_and_hostile_upload_ids_are_404(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    for upload_id in ["00000000-0000-0000-0000-000000000000", "..", "not-a-uuid", "%2e%2e%2fdata"]:
        response = session.get(f"{registry.url}/v2/{repo}/blobs/uploads/{upload_id}")
        assert response.status_code == 404, upload_id


def test_cross_repository_mount(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    digest = push_blob(session, registry.url, repo, b"shared layer")
    mounted = session.post(
        f"{registry.url}/v2/{repo}-copy/blobs/uploads/", params={"mount": digest, "from": repo}
    )
    assert mounted.status_code == 201
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert mounted.headers["Location"] == f"{registry.url}/v2/{repo}-copy/blobs/{digest}"
    assert session.get(f"{registry.url}/v2/{repo}-copy/blobs/{digest}").content == b"shared layer"


def test_a_mount_that_cannot_be_done_falls_back_to_an_upload(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    unknown_blob = {"mount": sha256(b"nowhere"), "from": f"{repo}-missing"}
    malformed_source = {"mount": sha256(b"nowhere"), "from": "../Not A Repo"}
    malformed_digest = {"mount": "sha256:short", "from": repo}
    for params in (unknown_blob, malformed_source, malformed_digest):
        response = session.post(f"{registry.url}/v2/{repo}/blobs/uploads/", params=params)
        assert response.status_code == 202, params
        location = response.headers["Location"]
        assert session.put(location, params={"digest": sha256(b"data")}, data=b"data").status_code == 201


def test_the_same_blob_pushed_twice_is_fine(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(1000)
    assert push_blob(session, registry.url, repo, data) == push_blob(session, registry.url, repo, data)


def test_abandoned_uploads_are_purged(start_registry) -> None:
    server = start_registry(
        overrides={"storage.maintenance.uploadpurging": {"enabled": True, "age": "1s", "interval": "1s"}}
    )
    session = server.session()
    location = start(session, server.url, "purge/me").headers["Location"]
    session.patch(location, data=b"forgotten")
    uploads = Path(server.root, "docker/registry/v2/repositories/purge/me/_uploads")
    deadline = time.monotonic() + 15
    while any(uploads.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(uploads.iterdir())
    assert session.get(location).status_code == 404
    assert "purged 1 abandoned uploads" in server.log()
