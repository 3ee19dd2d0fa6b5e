"""`GET /v2/` and HTTP basic authentication from an htpasswd file."""

import requests

from tests.support.client import errors_of, push_image
from tests.support.server import PASSWORD, USER, RegistryServer, status_within_seconds, write_htpasswd


def test_version_check_answers_200_with_valid_credentials(registry: RegistryServer) -> None:
    response = registry.session().get(f"{registry.url}/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_no_credentials_get_401_with_a_basic_challenge(registry: RegistryServer) -> None:
    response = requests.get(f"{registry.url}/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="cargobay-test"'
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert errors_of(response) == ["UNAUTHORIZED"]


def test_wrong_password_and_unknown_user_are_refused_alike(registry: RegistryServer) -> None:
    wrong = registry.session((USER, "not-the-password")).get(f"{registry.url}/v2/")
    unknown = registry.session(("mallory", PASSWORD)).get(f"{registry.url}/v2/")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "WWW-Authenticate" in unknown.headers


def test_every_endpoint_needs_credentials(registry: RegistryServer, repo: str) -> None:
    image = push_image(registry.session(), registry.url, repo)
    anonymous = requests.Session()
    for method, path in [
        ("GET", "/v2/_catalog"),
        ("GET", f"/v2/{repo}/tags/list"),
        ("GET", f"/v2/{repo}/manifests/latest"),
        ("HEAD", f"/v2/{repo}/manifests/latest"),
        ("GET", f"/v2/{repo}/blobs/{image.digest}"),
        ("POST", f"/v2/{repo}/blobs/uploads/"),
        ("DELETE", f"/v2/{repo}/manifests/{image.digest}"),
        ("GET", f"/v2/{repo}/referrers/{image.digest}"),
        ("GET", "/anything-else"),
    ]:
        assert anonymous.request(method, registry.url + path).status_code == 401, path
    # nothing was deleted by the refused DELETE
    assert registry.session().get(f"{registry.url}/v2/{repo}/manifests/latest").status_code == 200


def test_malformed_authorization_headers_get_401(registry: RegistryServer) -> None:
    for header in ["Basic !!!notbase64", "Bearer abc", "Basic ", "Basic Zm9v"]:
        response = requests.get(f"{registry.url}/v2/", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_users_added_changed_and_removed_in_the_file_take_effect_without_restart(start_registry) -> None:
    server = start_registry()
    newcomer = ("bob", "builder-7")
    assert server.session(newcomer).get(f"{server.url}/v2/").status_code == 401
    write_htpasswd(server.config_path.parent / "htpasswd", {USER: PASSWORD, "bob": "builder-7"})
    assert status_within_seconds(server, newcomer, 200)
    # a changed password: the old one is refused once the file is reloaded, though remembered
    write_htpasswd(server.config_path.parent / "htpasswd", {USER: PASSWORD, "bob": "rotated-8"})
    assert status_within_seconds(server, newcomer, 401)
    assert server.session(("bob", "rotated-8")).get(f"{server.url}/v2/").status_code == 200
    # and a removed user is locked out again, even though its login was remembered
    write_htpasswd(server.config_path.parent / "htpasswd", {"bob": "rotated-8"})
    assert status_within_seconds(server, (USER, PASSWORD), 401)


def test_without_an_auth_section_the_registry_is_open(start_registry) -> None:
    server = start_registry(auth=False)
    assert requests.get(f"{server.url}/v2/").status_code == 200
