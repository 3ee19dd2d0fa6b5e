"""Tag lists and the catalog with pagination, and the OCI 1.1 referrers API."""

import json

from tests.support.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    errors_of,
    push_blob,
    push_image,
    push_referrer,
    sha256,
)
from tests.support.server import RegistryServer


def test_tags_list_sorted_with_pagination(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, "c")
    for tag in ("a", "b", "d"):
        session.put(
            f"{registry.url}/v2/{repo}/manifests/{tag}",
            data=image.manifest,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    full = session.get(f"{registry.url}/v2/{repo}/tags/list")
    assert full.json() == {"name": repo, "tags": ["a", "b", "c", "d"]}
    assert "Link" not in full.headers
    first = session.get(f"{registry.url}/v2/{repo}/tags/list", params={"n": 2})
    assert first.json()["tags"] == ["a", "b"]
    assert first.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=b>; rel="next"'
    second = session.get(registry.url + first.headers["Link"].split(">")[0][1:])
    assert second.json()["tags"] == ["c", "d"]
    assert "Link" not in second.headers
    assert session.get(f"{registry.url}/v2/{repo}/tags/list", params={"n": 0}).json()["tags"] == []
    after = session.get(f"{registry.url}/v2/{repo}/tags/list", params={"last": "c"})
    assert after.json()["tags"] == ["d"]


def test_tags_of_an_unknown_repository_is_404_name_unknown(registry: RegistryServer, repo: str) -> None:
    response = registry.session().get(f"{registry.url}/v2/{repo}/tags/list")
    assert response.status_code == 404
    assert errors_of(response) == ["NAME_UNKNOWN"]


def test_invalid_page_size_is_400(registry: RegistryServer, repo: str) -> None:
    push_image(registry.session(), registry.url, repo)
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        for n in ("-1", "abc"):
            response = registry.session().get(f"{registry.url}{path}", params={"n": n})
            assert response.status_code == 400, (path, n)
            assert errors_of(response) == ["PAGINATION_NUMBER_INVALID"]


def test_catalog_lists_repositories_with_pagination(start_registry) -> None:
    server = start_registry()
    session = server.session()
    names = ["alpha", "beta/one", "beta/one/nested", "gamma"]
    for name in names:
        push_image(session, server.url, name)
    push_blob(session, server.url, "only-blobs", b"no manifest, not in the catalog")
    assert session.get(f"{server.url}/v2/_catalog").json() == {"repositories": names}
    page = session.get(f"{server.url}/v2/_catalog", params={"n": 3})
    assert page.json()["repositories"] == names[:3]
    assert page.headers["Link"] == '</v2/_catalog?n=3&last=beta/one/nested>; rel="next"'
    rest = session.get(f"{server.url}/v2/_catalog", params={"n": 3, "last": "beta/one/nested"})
    assert rest.json()["repositories"] == ["gamma"]


def test_referrers_list_and_filter(registry: RegistryServer, repo: str) -> None:
    session = registry.session()
    image = push_image(session, registry.url, repo, oci=True)
    signature, sbom = (
        push_referrer(
            session, registry.url, repo, image.manifest, kind, annotations={"org.example.kind": kind}
        )
        for kind in ("application/vnd.example.sig", "application/vnd.example.sbom")
    )
    url = f"{registry.url}/v2/{repo}/referrers/{image.digest}"
    everything = session.get(url)
    assert everything.status_code == 200
    assert everything.headers["Content-Type"] == OCI_INDEX
    index = everything.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    assert sorted(m["digest"] for m in index["manifests"]) == sorted([sha256(signature), sha256(sbom)])
    entry = next(m for m in index["manifests"] if m["digest"] == sha256(sbom))
    assert entry == {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(sbom),
        "size": len(sbom),
        "artifactType": "application/vnd.example.sbom",
        "annotations": {"org.example.kind": "application/vnd.example.sbom"},
    }
    assert "OCI-Filters-Applied" not in everything.headers
    filtered = session.get(url, params={"artifactType": "application/vnd.example.sig"})
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sha256(signature)]
    # deleting the referrer removes it from the list
    session.delete(f"{registry.url}/v2/{repo}/manifests/{sha256(signature)}")
    assert [m["digest"] for m in session.get(url).json()["manifests"]] == [sha256(sbom)]


def test_a_referrer_without_artifact_type_is_listed_by_its_config_type(
    registry: RegistryServer, repo: str
) -> None:
    """Older signers put the artifact's type in the config's media type, as OCI 1.1 allows."""
    session = registry.session()
    image = push_image(session, registry.url, repo, oci=True)
    config = b'{"signed": true}'
    push_blob(session, registry.url, repo, config)
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.example.legacy-sig", config),
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, image.manifest),
        }
    ).encode()
    url = f"{registry.url}/v2/{repo}/manifests/{sha256(artifact)}"
    assert session.put(url, data=artifact, headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    referrers = f"{registry.url}/v2/{repo}/referrers/{image.digest}"
    listed = session.get(referrers).json()["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [
        (sha256(artifact), "application/vnd.example.legacy-sig")
    ]
    filtered = session.get(referrers, params={"artifactType": "application/vnd.example.legacy-sig"})
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sha256(artifact)]


def test_referrers_of_a_digest_without_any_is_an_empty_index(registry: RegistryServer, repo: str) -> None:
    response = registry.session().get(f"{registry.url}/v2/{repo}/referrers/{sha256(b'lonely')}")
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_referrers_with_an_invalid_digest_is_400(registry: RegistryServer, repo: str) -> None:
    response = registry.session().get(f"{registry.url}/v2/{repo}/referrers/sha256:nothex")
    assert response.status_code == 400
    assert errors_of(response) == ["DIGEST_INVALID"]
