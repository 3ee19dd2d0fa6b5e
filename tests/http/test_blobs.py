"""`GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`."""

import os

import requests

from tests.support.client import errors_of, push_blob, sha256
from tests.support.server import RegistryServer


def test_get_and_head_return_the_bytes_and_their_digest(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(100_000)
    digest = push_blob(session, registry.url, repo, data)
    got = session.get(f"{registry.url}/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["Docker-Content-Digest"] == digest
    assert got.headers["Content-Length"] == str(len(data))
    assert got.headers["Accept-Ranges"] == "bytes"
    head = session.head(f"{registry.url}/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    # a proxy may keep the bytes, but must ask again whether the blob is still there
    assert head.headers["Cache-Control"] == "no-cache"


def test_range_requests_return_206_and_416(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    data = os.urandom(10_000)
    url = f"{registry.url}/v2/{repo}/blobs/{push_blob(session, registry.url, repo, data)}"
    partial = session.get(url, headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206
    assert partial.content == data[100:200]
    assert partial.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = session.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == data[-10:]
    beyond = session.get(url, headers={"Range": "bytes=20000-30000"})
    assert beyond.status_code == 416


def test_unknown_blob_is_404_blob_unknown(registry: RegistryServer, repo: str) -> None:
    response = registry.session().get(f"{registry.url}/v2/{repo}/blobs/{sha256(b'never pushed')}")
    assert response.status_code == 404
    assert errors_of(response) == ["BLOB_UNKNOWN"]
    head = registry.session().head(f"{registry.url}/v2/{repo}/blobs/{sha256(b'never pushed')}")
    assert head.status_code == 404


def test_a_blob_is_visible_only_in_repositories_it_was_pushed_to(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    digest = push_blob(session, registry.url, repo, os.urandom(100))
    other = session.get(f"{registry.url}/v2/{repo}-other/blobs/{digest}")
    assert other.status_code == 404
    assert errors_of(other) == ["BLOB_UNKNOWN"]


def test_invalid_digests_are_400_digest_invalid(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    for bad in ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "nocolon"]:
        response = session.get(f"{registry.url}/v2/{repo}/blobs/{bad}")
        assert response.status_code == 400, bad
        assert errors_of(response) == ["DIGEST_INVALID"], bad


def test_delete_unlinks_the_blob_from_the_repository(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    digest = push_blob(session, registry.url, repo, os.urandom(100))
    assert session.delete(f"{registry.url}/v2/{repo}/blobs/{digest}").status_code == 202
    assert session.get(f"{registry.url}/v2/{repo}/blobs/{digest}").status_code == 404
    again = session.delete(f"{registry.url}/v2/{repo}/blobs/{digest}")
    assert again.status_code == 404
    assert errors_of(again) == ["BLOB_UNKNOWN"]


def test_delete_is_refused_when_deletion_is_disabled(start_registry) -> None:
    server = start_registry(overrides={"storage.delete": None})
    session = server.session()
    digest = push_blob(session, server.url, "keep/me", b"precious")
    response = session.delete(f"{server.url}/v2/keep/me/blobs/{digest}")
    assert response.status_code == 405
    assert errors_of(response) == ["UNSUPPORTED"]
    assert session.get(f"{server.url}/v2/keep/me/blobs/{digest}").content == b"precious"


def test_hostile_repository_names_are_400_name_invalid(registry: RegistryServer) -> None:
    session = registry.session()
    digest = sha256(b"x")
    for name in ["UPPER/case", "a//b", "-lead", "a/-b", "trailing/", "x" * 300, "a..b"]:
        response = session.get(f"{registry.url}/v2/{name}/blobs/{digest}")
        assert response.status_code == 400, name
        assert errors_of(response) == ["NAME_INVALID"], name


def test_path_traversal_never_reaches_the_file_system(registry: RegistryServer) -> None:
    for method, path, status, code in [
        ("POST", "/v2/..%2F..%2Fetc/blobs/uploads/", 400, "NAME_INVALID"),
        ("GET", "/v2/%2e%2e/%2e%2e/etc/tags/list", 400, "NAME_INVALID"),
        # the client resolves the dots itself: what arrives is a path outside /v2/
        ("GET", "/v2/a/../../../../etc/passwd/tags/list", 404, "UNSUPPORTED"),
    ]:
        response = requests.request(method, registry.url + path, auth=registry.credentials)
        assert response.status_code == status, path
        assert errors_of(response) == [code], path
