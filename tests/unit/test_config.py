"""Reading registry:2 configuration: file, REGISTRY_* overrides, clear errors."""

import datetime
import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cargobay.cli.serve import check_writable
from cargobay.config import ConfigError, find_config_file, load_settings
from cargobay.durations import parse_duration

REGISTRY2_DEFAULT = """
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path


def test_defaults_are_registry2s() -> None:
    settings = load_settings(None, {})
    assert (settings.listen_host, settings.listen_port) == ("", 5000)
    assert settings.root_directory == Path("/var/lib/registry")
    assert settings.delete_enabled is False
    assert settings.htpasswd is None
    assert settings.upload_purging.enabled is True
    assert settings.upload_purging.age == datetime.timedelta(hours=168)


def test_registry2s_own_config_starts_and_unsupported_keys_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        settings = load_settings(write(tmp_path, REGISTRY2_DEFAULT), {})
    assert settings.headers == (("X-Content-Type-Options", "nosniff"),)
    warned = caplog.text
    for key in ("storage.cache.blobdescriptor", "health.storagedriver.enabled", "log.fields.service"):
        assert key in warned
    assert "http.addr" not in warned
    assert "storage.filesystem.rootdirectory" not in warned


def test_environment_overrides_like_the_maxscale_stack_file(tmp_path: Path) -> None:
    environ = {
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/docker-registry.htpasswd",
        "REGISTRY_HTTP_ADDR": "0.0.0.0:5001",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
        "UNRELATED": "x",
    }
    settings = load_settings(write(tmp_path, REGISTRY2_DEFAULT), environ)
    assert settings.htpasswd is not None
    assert settings.htpasswd.path == Path("/auth/docker-registry.htpasswd")
    assert settings.htpasswd.realm == "Registry Realm"
    assert (settings.listen_host, settings.listen_port) == ("0.0.0.0", 5001)
    assert settings.root_directory == Path("/data")
    assert settings.delete_enabled is True
    assert settings.upload_purging.age == datetime.timedelta(hours=2)


def test_environment_fills_a_section_the_file_has(tmp_path: Path) -> None:
    path = write(tmp_path, "auth:\n  htpasswd:\n    realm: from-file\n    path: /file\n")
    settings = load_settings(path, {"REGISTRY_AUTH_HTPASSWD_PATH": "/env"})
    assert settings.htpasswd is not None
    assert (settings.htpasswd.realm, settings.htpasswd.path) == ("from-file", Path("/env"))


@pytest.mark.parametrize(
    ("text", "environ", "named"),
    [
        ("storage:\n  delete:\n    enabled: maybe\n", {}, "storage.delete.enabled"),
        ("http:\n  addr: nowhere\n", {}, "http.addr"),
        ("", {"REGISTRY_HTTP_ADDR": ":99999"}, "http.addr"),
        ("log:\n  level: loud\n", {}, "log.level"),
        ("storage:\n  s3:\n    bucket: b\n", {}, "storage.s3"),
        ("auth:\n  token:\n    realm: x\n", {}, "auth"),
        ("auth:\n  htpasswd:\n    realm: x\n", {}, "auth.htpasswd.path"),
        ("storage:\n  maintenance:\n    uploadpurging:\n      age: soon\n", {}, "uploadpurging.age"),
        ("storage:\n  maintenance:\n    uploadpurging:\n      interval: 0\n", {}, "uploadpurging.interval"),
        ("auth:\n  htpasswd:\n    realm: {a: 1}\n    path: /h\n", {}, "auth.htpasswd.realm"),
        ("http:\n  headers:\n    X-A: [null]\n", {}, "http.headers.X-A"),
        ("version: 2\n", {}, "version"),
        ("http:\n  host: registry.example.com\n", {}, "http.host"),
        ("http:\n  tls:\n    certificate: /c.pem\n", {}, "http.tls"),
        ("- a list\n", {}, "mapping"),
        ("key: [unclosed\n", {}, "YAML"),
    ],
)
def test_invalid_values_stop_startup_naming_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_settings(write(tmp_path, text), environ)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(tmp_path / "missing.yml", {})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("168h", 604800), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "10", "1d", "h", "1h 30m", "-5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_retention_runs_hourly_unless_told_otherwise(tmp_path: Path) -> None:
    assert load_settings(None, {}).retention.interval == datetime.timedelta(hours=1)
    off = load_settings(write(tmp_path, "cargobay:\n  retention:\n    interval: 0\n"), {})
    assert off.retention.interval is None


def test_retention_rules_are_read_and_checked(tmp_path: Path) -> None:
    text = """
cargobay:
  retention:
    interval: 30m
    rules:
      - repositories: ci/*
        keepnewest: 10
        maxage: 72h
        keeptags: ^release-
        keeppulledwithin: 24h
  gc:
    interval: 6h
    deleteuntagged: true
"""
    settings = load_settings(write(tmp_path, text), {})
    (rule,) = settings.retention.rules
    assert settings.retention.interval == datetime.timedelta(minutes=30)
    assert (rule.repositories, rule.keep_newest) == ("ci/*", 10)
    assert rule.max_age == datetime.timedelta(hours=72)
    assert rule.keep_tags is not None
    assert rule.keep_tags.search("release-1.2")
    assert rule.keep_pulled_within == datetime.timedelta(hours=24)
    assert settings.collection.interval == datetime.timedelta(hours=6)
    assert settings.collection.delete_untagged is True


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ("{keepnewest: 3}", r"rules\[0\]\.repositories"),
        ("{repositories: a, keepnewest: -1}", r"rules\[0\]\.keepnewest"),
        ("{repositories: a, maxage: forever}", r"rules\[0\]\.maxage"),
        ("{repositories: a, keeptags: '('}", r"rules\[0\]\.keeptags"),
        ("{repositories: a, keep: 1}", r"rules\[0\]\.keep"),
    ],
)
def test_bad_retention_rules_name_the_key(tmp_path: Path, rule: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(write(tmp_path, f"cargobay:\n  retention:\n    rules: [{rule}]\n"), {})


def test_the_write_check_probes_the_directories_of_a_registry2_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree registry:2 left as root: the top may be writable while blobs/ is not."""
    blobs = tmp_path / "docker/registry/v2/blobs"
    blobs.mkdir(parents=True)
    real = tempfile.NamedTemporaryFile

    def refuse_in_blobs(*args: Any, **kwargs: Any) -> Any:
        if Path(kwargs["dir"]) == blobs:
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse_in_blobs)
    with pytest.raises(ConfigError, match=f"{blobs} is not writable by uid .*chown -R"):
        check_writable(tmp_path)
    check_writable(tmp_path / "fresh")  # a new directory: only the top is checked


def test_the_config_file_is_found_where_registry2_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker, distribution = tmp_path / "docker/config.yml", tmp_path / "distribution/config.yml"
    monkeypatch.setattr("cargobay.config.DEFAULT_CONFIG_PATHS", (docker, distribution))
    assert find_config_file(None) is None
    distribution.parent.mkdir()
    distribution.write_text("version: 0.1\n")
    assert find_config_file(None) == distribution
    docker.parent.mkdir()
    docker.write_text("version: 0.1\n")
    assert find_config_file(None) == docker
    assert find_config_file(tmp_path / "mine.yml") == tmp_path / "mine.yml"


def test_admins_are_a_list_of_users(tmp_path: Path) -> None:
    assert load_settings(None, {}).admins == frozenset()
    listed = load_settings(write(tmp_path, "cargobay:\n  admins: [alice, bob]\n"), {})
    assert listed.admins == {"alice", "bob"}
    assert load_settings(None, {"REGISTRY_CARGOBAY_ADMINS": "alice"}).admins == {"alice"}
    with pytest.raises(ConfigError, match=r"cargobay\.admins"):
        load_settings(write(tmp_path, "cargobay:\n  admins: {alice: 1}\n"), {})
