"""Configuration: a registry:2 `config.yml` plus `REGISTRY_*` overrides, read into one `Settings`.

The keys, their nesting and the environment rules are registry:2's, so a
stack file or config written for registry:2 starts cargobay unchanged. Keys
cargobay does not support are logged and ignored; a supported key with an
invalid value stops startup with a sentence naming the key.
"""

import datetime
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cargobay.durations import parse_duration

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATHS = (
    Path("/etc/docker/registry/config.yml"),
    Path("/etc/distribution/config.yml"),
)
ENV_PREFIX = "REGISTRY_"
LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}
STORAGE_DRIVERS = ("filesystem", "inmemory")
# Storage keys that configure something other than the driver.
STORAGE_SECTIONS = ("delete", "maintenance", "cache", "redirect")


class ConfigError(Exception):
    """A configuration value that cargobay cannot run with; the message names the key."""


@dataclass(frozen=True)
class UploadPurging:
    enabled: bool = True
    age: datetime.timedelta = datetime.timedelta(hours=168)
    interval: datetime.timedelta = datetime.timedelta(hours=24)
    dry_run: bool = False


@dataclass(frozen=True)
class CollectionSchedule:
    """cargobay's own `cargobay.gc` section: garbage collection inside the server."""

    interval: datetime.timedelta | None = None  # None: only on demand
    grace: datetime.timedelta = datetime.timedelta(hours=1)
    delete_untagged: bool = False


@dataclass(frozen=True)
class RetentionRule:
    """One `cargobay.retention.rules` entry: which tags of matching repositories may go."""

    repositories: str  # a glob over repository names, e.g. ci/*
    keep_newest: int | None = None  # keep this many newest tags by push time
    max_age: datetime.timedelta | None = None  # delete tags pushed longer ago than this
    keep_tags: re.Pattern[str] | None = None  # never delete tags matching this regex
    keep_pulled_within: datetime.timedelta | None = None  # never delete what was pulled this recently


# Hourly, so that tags expire on their own when the pusher asked (with no rules, that is
# all a run does); `0` leaves retention to `cargobay retention`.
DEFAULT_RETENTION_INTERVAL = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class RetentionPolicy:
    interval: datetime.timedelta | None = DEFAULT_RETENTION_INTERVAL
    rules: tuple[RetentionRule, ...] = ()


@dataclass(frozen=True)
class HtpasswdSettings:
    realm: str
    path: Path


@dataclass(frozen=True)
class Settings:
    log_level: int = logging.INFO
    access_log: bool = True
    listen_host: str = ""  # "" = every interface, as registry:2's ":5000"
    listen_port: int = 5000
    public_url: str | None = None  # http.host: the externally reachable base URL
    relative_urls: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    storage_driver: str = "filesystem"
    root_directory: Path = Path("/var/lib/registry")
    delete_enabled: bool = False
    upload_purging: UploadPurging = field(default_factory=UploadPurging)
    htpasswd: HtpasswdSettings | None = None
    collection: CollectionSchedule = field(default_factory=CollectionSchedule)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    admins: frozenset[str] = frozenset()  # htpasswd users who may call /admin/


def find_config_file(explicit: Path | None) -> Path | None:
    """The file to read: the one given, else registry:2's usual places, else none (defaults)."""
    if explicit is not None:
        return explicit
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load_settings(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (if any), apply `REGISTRY_*` from `environ`, and check every supported key."""
    tree: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except OSError as error:
            raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"configuration file {path} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"configuration file {path} must hold a mapping at the top level")
        tree = loaded or {}
    apply_environment(tree, os.environ if environ is None else environ)
    return _Reader(tree).settings()


def apply_environment(tree: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Apply `REGISTRY_A_B_C=value` as `a.b.c: value`, registry:2's rule.

    Values are parsed as YAML scalars (`true`, `5`), and a string that names a
    section (`REGISTRY_AUTH=htpasswd`) becomes that section, so that
    `REGISTRY_AUTH_HTPASSWD_PATH` can fill it in. Shorter names apply first.
    """
    for key in sorted(k for k in environ if k.startswith(ENV_PREFIX)):
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("_")]
        if not all(parts):
            continue
        try:
            value = yaml.safe_load(environ[key])
        except yaml.YAMLError:
            value = environ[key]
        node = tree
        for part in parts[:-1]:
            existing_key = _matching_key(node, part)
            child = node.get(existing_key)
            if isinstance(child, str):
                child = {child: {}}
            elif not isinstance(child, dict):
                child = {}
            node[existing_key] = child
            node = child
        last = _matching_key(node, parts[-1])
        if isinstance(node.get(last), dict) and isinstance(value, str):
            node[last] = {value: node[last].get(value) or {}}
        else:
            node[last] = value


def _matching_key(node: dict[str, Any], part: str) -> str:
    return next((k for k in node if str(k).lower() == part), part)


class _Reader:
    """Reads the tree key by key, remembering which keys it understood."""

    def __init__(self, tree: dict[str, Any]) -> None:
        self.tree = tree
        self.used: set[str] = set()

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at `dotted`, which counts as understood from now on."""
        node = self.peek(dotted)
        if node is None:
            return default
        self.used.add(dotted)
        return node

    def peek(self, dotted: str) -> Any:
        """The value at `dotted`, to look at its shape without claiming its keys."""
        node: Any = self.tree
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def settings(self) -> Settings:
        version = self.get("version")
        if version is not None and str(version) != "0.1":
            raise ConfigError(f"version: {version!r} is not supported: use 0.1")
        host, port = _listen_address(self.get("http.addr", ":5000"))
        level_name = str(self.get("log.level", "info")).lower()
        if level_name not in LOG_LEVELS:
            raise ConfigError(f"log.level: {level_name!r} is not valid: use one of {', '.join(LOG_LEVELS)}")
        public_url = self.get("http.host")
        if public_url is not None and not str(public_url).startswith(("http://", "https://")):
            raise ConfigError(
                f"http.host: {public_url!r} is not valid: use a URL like https://registry.example.com"
            )
        tls_certificate, tls_key = self.get("http.tls.certificate"), self.get("http.tls.key")
        if bool(tls_certificate) != bool(tls_key):
            raise ConfigError("http.tls: set both http.tls.certificate and http.tls.key, or neither")
        driver, root = self._storage()
        settings = Settings(
            log_level=LOG_LEVELS[level_name],
            access_log=not self._bool("log.accesslog.disabled", False),
            listen_host=host,
            listen_port=port,
            public_url=str(public_url).rstrip("/") if public_url else None,
            relative_urls=self._bool("http.relativeurls", False),
            headers=self._headers(),
            tls_certificate=Path(tls_certificate) if tls_certificate else None,
            tls_key=Path(tls_key) if tls_key else None,
            storage_driver=driver,
            root_directory=root,
            delete_enabled=self._bool("storage.delete.enabled", False),
            upload_purging=self._upload_purging(),
            htpasswd=self._auth(),
            collection=self._collection(),
            retention=self._retention(),
            admins=self._admins(),
        )
        for key in sorted(_leaf_keys(self.tree) - self.used):
            if not any(key.startswith(u + ".") for u in self.used):
                log.warning("configuration key %s is not supported by cargobay and is ignored", key)
        return settings

    def _bool(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{key}: {value!r} is not valid: use true or false")

    def _duration(self, key: str, default: datetime.timedelta) -> datetime.timedelta:
        value = self.get(key)
        if value is None:
            return default
        try:
            return parse_duration(str(value))
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None

    def _positive_duration(self, key: str, default: datetime.timedelta) -> datetime.timedelta:
        duration = self._duration(key, default)
        if duration <= datetime.timedelta(0):
            raise ConfigError(f"{key}: {self.get(key)!r} must be longer than 0, e.g. 24h")
        return duration

    def _headers(self) -> tuple[tuple[str, str], ...]:
        headers = self.get("http.headers", {}) or {}
        if not isinstance(headers, dict):
            raise ConfigError("http.headers: must map header names to lists of values")
        pairs: list[tuple[str, str]] = []
        for name, values in headers.items():
            for value in values if isinstance(values, list) else [values]:
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise ConfigError(f"http.headers.{name}: {value!r} is not a header value: use a string")
                pairs.append((str(name), str(value)))
        return tuple(pairs)

    def _storage(self) -> tuple[str, Path]:
        storage = self.peek("storage") or {}
        if not isinstance(storage, dict):
            raise ConfigError("storage: must be a mapping with one driver, e.g. filesystem")
        drivers = [k for k in storage if k not in STORAGE_SECTIONS]
        if len(drivers) > 1:
            raise ConfigError(f"storage: configure one driver, not {', '.join(drivers)}")
        driver = drivers[0] if drivers else "filesystem"
        if driver not in STORAGE_DRIVERS:
            raise ConfigError(
                f"storage.{driver}: this driver is not supported: use {' or '.join(STORAGE_DRIVERS)}"
            )
        self.used.add(f"storage.{driver}")
        root = self.get("storage.filesystem.rootdirectory", "/var/lib/registry")
        if not isinstance(root, str) or not root:
            raise ConfigError(f"storage.filesystem.rootdirectory: {root!r} is not a directory path")
        return driver, Path(root)

    def _upload_purging(self) -> UploadPurging:
        default = UploadPurging()
        if self.peek("storage.maintenance.uploadpurging") is None:
            return default
        return UploadPurging(
            enabled=self._bool("storage.maintenance.uploadpurging.enabled", default.enabled),
            age=self._positive_duration("storage.maintenance.uploadpurging.age", default.age),
            interval=self._positive_duration("storage.maintenance.uploadpurging.interval", default.interval),
            dry_run=self._bool("storage.maintenance.uploadpurging.dryrun", default.dry_run),
        )

    def _collection(self) -> CollectionSchedule:
        default = CollectionSchedule()
        interval = self._duration("cargobay.gc.interval", datetime.timedelta(0))
        return CollectionSchedule(
            interval=interval or None,
            grace=self._duration("cargobay.gc.grace", default.grace),
            delete_untagged=self._bool("cargobay.gc.deleteuntagged", default.delete_untagged),
        )

    def _retention(self) -> RetentionPolicy:
        interval = self._duration(
            "cargobay.retention.interval", RetentionPolicy.interval or datetime.timedelta(0)
        )
        rules = self.get("cargobay.retention.rules", [])
        if not isinstance(rules, list):
            raise ConfigError("cargobay.retention.rules: must be a list of rules")
        return RetentionPolicy(
            interval=interval or None,
            rules=tuple(
                _retention_rule(rule, f"cargobay.retention.rules[{i}]") for i, rule in enumerate(rules)
            ),
        )

    def _admins(self) -> frozenset[str]:
        admins = self.get("cargobay.admins", [])
        if isinstance(admins, str):  # REGISTRY_CARGOBAY_ADMINS=alice
            admins = [admins]
        if not isinstance(admins, list) or not all(isinstance(a, str) and a for a in admins):
            raise ConfigError(f"cargobay.admins: {admins!r} is not valid: use a list of htpasswd user names")
        return frozenset(admins)

    def _auth(self) -> HtpasswdSettings | None:
        auth = self.peek("auth")
        if not auth:
            return None
        if not isinstance(auth, dict) or set(auth) != {"htpasswd"}:
            kinds = ", ".join(auth) if isinstance(auth, dict) else str(auth)
            raise ConfigError(
                f"auth: {kinds!r} is not supported: cargobay supports auth.htpasswd "
                "(remove the auth section to run an open registry)"
            )
        path = self.get("auth.htpasswd.path")
        if not path:
            raise ConfigError("auth.htpasswd.path: required: the htpasswd file with bcrypt entries")
        realm = self.get("auth.htpasswd.realm", "Registry Realm")
        if not isinstance(realm, str) or not realm:
            raise ConfigError(f"auth.htpasswd.realm: {realm!r} is not a realm: use a string")
        return HtpasswdSettings(realm=realm, path=Path(str(path)))


def _retention_rule(rule: Any, key: str) -> RetentionRule:
    known = {"repositories", "keepnewest", "maxage", "keeptags", "keeppulledwithin"}
    if not isinstance(rule, dict) or not isinstance(rule.get("repositories"), str):
        raise ConfigError(f"{key}.repositories: required: a glob such as ci/*")
    unknown = sorted(set(rule) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown: use {', '.join(sorted(known))}")
    keep_newest = rule.get("keepnewest")
    if keep_newest is not None and (not isinstance(keep_newest, int) or keep_newest < 0):
        raise ConfigError(f"{key}.keepnewest: {keep_newest!r} is not valid: use a whole number >= 0")
    keep_tags = rule.get("keeptags")
    try:
        pattern = re.compile(str(keep_tags)) if keep_tags is not None else None
    except re.error as error:
        raise ConfigError(f"{key}.keeptags: {keep_tags!r} is not a valid regex: {error}") from None

    def duration(name: str) -> datetime.timedelta | None:
        if rule.get(name) is None:
            return None
        try:
            return parse_duration(str(rule[name]))
        except ValueError as error:
            raise ConfigError(f"{key}.{name}: {error}") from None

    return RetentionRule(
        repositories=rule["repositories"],
        keep_newest=keep_newest,
        max_age=duration("maxage"),
        keep_tags=pattern,
        keep_pulled_within=duration("keeppulledwithin"),
    )


def _listen_address(addr: Any) -> tuple[str, int]:
    text = str(addr)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"http.addr: {text!r} is not valid: use HOST:PORT or :PORT, e.g. :5000")
    return host.strip("[]"), int(port)


def _leaf_keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict) or not tree:
        return {prefix} if prefix else set()
    keys: set[str] = set()
    for key, value in tree.items():
        keys |= _leaf_keys(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    return keys
