"""`Location` headers behind a reverse proxy (forwarded headers, `http.host`, `http.relativeurls`), TLS."""

from tests.support.server import RegistryServer
from tests.support.tls import self_signed_certificate


def upload_location(server: RegistryServer, headers: dict[str, str] | None = None) -> str:
    response = server.session().post(f"{server.url}/v2/proxied/blobs/uploads/", headers=headers)
    assert response.status_code == 202
    return response.headers["Location"]


def test_forwarded_proto_and_host_are_honoured(registry: RegistryServer) -> None:
    location = upload_location(
        registry, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "registry.example.com"}
    )
    assert location.startswith("https://registry.example.com/v2/proxied/blobs/uploads/")


def test_host_header_from_the_proxy_is_used(registry: RegistryServer) -> None:
    location = upload_location(registry, {"Host": "docker.example.org:8443", "X-Forwarded-Proto": "https"})
    assert location.startswith("https://docker.example.org:8443/v2/proxied/")


def test_first_of_several_forwarded_values_wins(registry: RegistryServer) -> None:
    location = upload_location(
        registry, {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "outer.example, inner"}
    )
    assert location.startswith("https://outer.example/v2/")


def test_http_host_fixes_the_base_url(start_registry) -> None:
    server = start_registry(overrides={"http.host": "https://fixed.example.com/"})
    location = upload_location(server, {"X-Forwarded-Host": "ignored.example"})
    assert location.startswith("https://fixed.example.com/v2/proxied/blobs/uploads/")


def test_relative_urls(start_registry) -> None:
    server = start_registry(overrides={"http.relativeurls": True})
    assert upload_location(server).startswith("/v2/proxied/blobs/uploads/")


def test_configured_headers_are_added_to_every_response(start_registry) -> None:
    server = start_registry(overrides={"http.headers": {"X-Content-Type-Options": ["nosniff"]}})
    assert server.session().get(f"{server.url}/v2/").headers["X-Content-Type-Options"] == "nosniff"
    assert server.session(False).get(f"{server.url}/v2/").headers["X-Content-Type-Options"] == "nosniff"


def test_tls_with_the_configured_certificate(start_registry, tmp_path) -> None:
    cert, key = self_signed_certificate(tmp_path, "127.0.0.1", "IP:127.0.0.1")
    server = start_registry(
        overrides={"http.tls": {"certificate": str(cert), "key": str(key)}}, scheme="https", ca=cert
    )
    assert server.session().get(f"{server.url}/v2/").status_code == 200
    assert upload_location(server).startswith(f"https://127.0.0.1:{server.port}/v2/")
