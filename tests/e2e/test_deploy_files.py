"""The shipped deployment files, checked without Docker: quick to run and quick to fail.

deploy/docker-registry.nginx must keep every setting that avoids a known trap with a
registry behind nginx, in the plain-HTTP server block the seed setup uses and in the TLS
block shipped commented out; the TLS block, uncommented with a certificate made here, must
be valid nginx (`nginx -t`) and serve cargobay over HTTPS. The Dockerfile must build with
the classic builder (no BuildKit-only syntax) and take its base image from a build argument.
test_deploy.py then runs all of it for real.
"""

import re
from pathlib import Path

import pytest
import requests

from tests.e2e.nginx import SHIPPED_LISTEN, check_config, nginx_command, serving_nginx, site_config
from tests.support.server import PASSWORD, USER, RegistryServer, free_port
from tests.support.tls import self_signed_certificate

REPO = Path(__file__).resolve().parents[2]
NGINX_SITE = REPO / "deploy" / "docker-registry.nginx"
DOCKERFILE = REPO / "Dockerfile"
SHIPPED_TLS_LISTEN = "listen 443 ssl;"
SHIPPED_CERTIFICATE = "ssl_certificate     /etc/ssl/certs/registry.example.com.crt;"
SHIPPED_KEY = "ssl_certificate_key /etc/ssl/private/registry.example.com.key;"
LONG_TIMEOUT_SECONDS = 300  # a big layer over a slow link: nginx's default of 60 s cuts it off

# Each server block must say these, whatever the spacing (nginx's own words, normalised).
REQUIRED_IN_EACH_SERVER = (
    "client_max_body_size 0",  # layers can be gigabytes: no 413
    "chunked_transfer_encoding on",  # docker pushes chunked
    "proxy_pass http://docker-registry",
    "proxy_http_version 1.1",  # chunked bodies and keepalive to the upstream need HTTP/1.1
    'proxy_set_header Connection ""',
    "proxy_request_buffering off",  # stream uploads, do not spool them to disk first
    "proxy_buffering off",  # stream downloads too
    "proxy_set_header Host $http_host",  # Location headers must name the proxy, port included
    "proxy_set_header X-Real-IP $remote_addr",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for",
    "proxy_set_header X-Forwarded-Proto $scheme",
    # the header only when the registry did not send it: the map below leaves it empty otherwise
    "add_header Docker-Distribution-Api-Version $docker_distribution_api_version always",
)
TIMEOUTS = ("proxy_read_timeout", "proxy_send_timeout")
NGINX_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

BUILDKIT_ONLY_FLAGS = ("--mount", "--network", "--security", "--link", "--chmod", "--checksum", "--parents")


# The nginx site --------------------------------------------------------------------------


def uncomment_tls_block(site: str) -> str:
    """The site with its commented-out `# server { ... # }` TLS block enabled, as a user would."""
    lines = site.splitlines()
    start = lines.index("# server {")
    end = lines.index("# }", start)
    enabled = [re.sub(r"^# ?", "", line) for line in lines[start : end + 1]]
    return "\n".join([*lines[:start], *enabled, *lines[end + 1 :]]) + "\n"


def without_comments(config: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in config.splitlines())


def blocks(config: str, opening: str) -> list[str]:
    """The bodies of the blocks whose heading matches `opening` (a regex ending before `{`)."""
    text = without_comments(config)
    found = []
    for match in re.finditer(rf"(?m)^\s*{opening}\s*\{{", text):
        depth, position = 1, match.end()
        while depth:
            character = text[position]
            depth += {"{": 1, "}": -1}.get(character, 0)
            position += 1
        found.append(text[match.end() : position - 1])
    return found


def statements(block: str) -> list[str]:
    """Every directive in a block and its sub-blocks, whitespace normalised: `name arg arg`."""
    return [" ".join(part.split()) for part in re.split(r"[;{}]", block) if part.strip()]


def seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([smhd]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * NGINX_TIME_UNITS[unit]


def servers() -> dict[str, list[str]]:
    """The plain-HTTP and the TLS server blocks of the shipped site, as lists of statements."""
    shipped = NGINX_SITE.read_text()
    plain = blocks(shipped, "server")
    assert len(plain) == 1, "the shipped site should enable exactly one server block (plain HTTP)"
    tls = [body for body in blocks(uncomment_tls_block(shipped), "server") if "ssl" in body]
    assert len(tls) == 1, "the shipped site should have one commented-out TLS server block"
    return {"plain HTTP": statements(plain[0]), "TLS": statements(tls[0])}


@pytest.mark.parametrize("server", ["plain HTTP", "TLS"])
def test_nginx_site_sets_every_registry_proxy_setting(server: str) -> None:
    said = servers()[server]
    missing = [directive for directive in REQUIRED_IN_EACH_SERVER if directive not in said]
    assert missing == [], f"{server} server block of {NGINX_SITE.name} lacks {missing}"
    for name in TIMEOUTS:
        values = [statement.split()[1] for statement in said if statement.split()[0] == name]
        assert len(values) == 1, f"{server}: {name} should be set once, is {values}"
        assert seconds(values[0]) >= LONG_TIMEOUT_SECONDS, f"{server}: {name} {values[0]} is too short"
    listen = [statement for statement in said if statement.startswith("listen ")]
    assert listen == (["listen 80"] if server == "plain HTTP" else ["listen 443 ssl"])


def test_nginx_site_adds_the_api_version_header_only_where_the_registry_did_not() -> None:
    """The map turns the upstream's header into an empty value (no header) when it was sent."""
    maps = blocks(
        NGINX_SITE.read_text(),
        r"map\s+\$upstream_http_docker_distribution_api_version\s+\$docker_distribution_api_version",
    )
    assert len(maps) == 1, "the site should map the upstream's Docker-Distribution-Api-Version"
    # only the "not sent" case has a value; no `default` line, so anything else maps to ""
    assert statements(maps[0]) == ["'' 'registry/2.0'"]
    upstreams = blocks(NGINX_SITE.read_text(), r"upstream\s+docker-registry")
    assert len(upstreams) == 1
    assert "server 127.0.0.1:5000" in statements(upstreams[0])


def test_nginx_site_tls_block_is_valid_nginx_and_serves_the_registry_over_https(
    registry: RegistryServer, tmp_path: Path
) -> None:
    """Uncomment the TLS block, give it a self-signed certificate, `nginx -t`, then use it.

    Only what a user must change is substituted: the certificate paths (and, to stay on
    loopback and off privileged ports, the listen addresses and the upstream port).
    """
    certificate, key = self_signed_certificate(
        tmp_path, "registry.example.com", "DNS:registry.example.com,IP:127.0.0.1"
    )
    http_port, https_port = free_port(), free_port()
    enabled = tmp_path / NGINX_SITE.name
    enabled.write_text(uncomment_tls_block(NGINX_SITE.read_text()))
    site = site_config(enabled, http_port, registry.port)
    for shipped, ours in (
        (SHIPPED_TLS_LISTEN, f"listen 127.0.0.1:{https_port} ssl;"),
        (SHIPPED_CERTIFICATE, f"ssl_certificate {certificate};"),
        (SHIPPED_KEY, f"ssl_certificate_key {key};"),
    ):
        assert site.count(shipped) == 1, f"the TLS block should contain {shipped!r} once"
        site = site.replace(shipped, ours)
    assert SHIPPED_LISTEN not in site
    prefix = tmp_path / "nginx"
    (prefix / "sites-enabled").mkdir(parents=True)
    (prefix / "sites-enabled" / NGINX_SITE.name).write_text(site)

    checked = check_config(nginx_command(prefix))
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr

    with serving_nginx(prefix, https_port), requests.Session() as session:
        session.trust_env = False
        session.verify = str(certificate)  # the client trusts the certificate, as docker would
        url = f"https://127.0.0.1:{https_port}/v2/"
        for credentials, status in ((None, 401), ((USER, PASSWORD), 200)):
            answer = session.get(url, auth=credentials, timeout=30)
            assert answer.status_code == status
            assert answer.raw.headers.getlist("Docker-Distribution-Api-Version") == ["registry/2.0"]
        # an upload's Location names the proxy, scheme and port included (Host, X-Forwarded-Proto)
        started = session.post(f"{url}deploy/tls/blobs/uploads/", auth=(USER, PASSWORD), timeout=30)
        assert started.status_code == 202, started.text
        assert started.headers["Location"].startswith(f"{url}deploy/tls/blobs/uploads/")


# The Dockerfile --------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def test_dockerfile_uses_no_buildkit_only_syntax() -> None:
    """The classic builder (and Docker 20.10, the engine CI uses) must build it."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?im)^#\s*syntax\s*=", text), "a `# syntax=` line needs BuildKit"
    for keyword, arguments in instructions():
        assert "<<" not in arguments, f"heredoc in `{keyword} {arguments}` needs BuildKit"
        flags = re.findall(r"(?:^|\s)(--[a-z-]+)", arguments) if keyword in ("RUN", "COPY", "ADD") else []
        for flag in flags:
            assert flag not in BUILDKIT_ONLY_FLAGS, f"`{keyword} {flag}` needs BuildKit"


def test_dockerfile_first_from_uses_the_base_image_argument() -> None:
    """Where no image can be pulled, `--build-arg BASE_IMAGE=...` must pick the base."""
    found = instructions()
    keywords = [keyword for keyword, _ in found]
    first_from = keywords.index("FROM")
    arguments = {
        arguments.split("=", 1)[0]: arguments.split("=", 1)[1]
        for keyword, arguments in found[:first_from]
        if keyword == "ARG" and "=" in arguments
    }
    assert set(keywords[:first_from]) == {"ARG"}, "only ARG may come before the first FROM"
    base = found[first_from][1].split()[0]
    match = re.fullmatch(r"\$\{?(\w+)\}?", base)
    assert match is not None, f"the first FROM should name a build argument, not {base!r}"
    assert match.group(1) in arguments, f"{match.group(1)} should be declared with a default before FROM"
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", arguments[match.group(1)]), arguments
