"""htpasswd files with bcrypt entries, as `htpasswd -B` writes them and registry:2 reads them.

Checking a password costs a bcrypt run (milliseconds of CPU), so it never
runs on the event loop, and a successful check is remembered: keyed on an
HMAC of the user, the password and the stored hash under a key that lives
only in this process, so the password itself is never stored, a changed
hash invalidates the entry, and a reload of the file drops them all.
Unknown users are checked against a dummy hash of the same cost, so they
take as long as a wrong password.
"""

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from cargobay.blocking import run_blocking

log = logging.getLogger(__name__)

BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")
DEFAULT_COST = 10
RELOAD_CHECK_SECONDS = 1.0
MAX_REMEMBERED = 10_000


class HtpasswdError(Exception):
    """An htpasswd file cargobay cannot use; the message names the file and line."""


def parse_htpasswd(text: str, source: str) -> dict[str, bytes]:
    """Map each user to its bcrypt hash; any other kind of entry is an error naming its line."""
    entries: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise HtpasswdError(f"{source} line {number}: expected USER:HASH")
        if not hashed.startswith(BCRYPT_PREFIXES):
            raise HtpasswdError(
                f"{source} line {number}: the entry for {user!r} is not bcrypt: "
                "recreate it with `htpasswd -B` or `cargobay user passwd`"
            )
        entries[user] = hashed.encode()
    return entries


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    """A bcrypt hash in the `$2y$` form `htpasswd -B` writes (the same algorithm as `$2b$`)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    return "$2y$" + hashed[4:]


def password_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes, or a malformed hash
        return False


def _cost_of(hashed: bytes) -> int:
    try:
        return int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return DEFAULT_COST


@dataclass(frozen=True)
class _FileState:
    inode: int
    size: int
    mtime_ns: int


def decoy_hash(entries: dict[str, bytes]) -> bytes:
    """What an unknown user's password is checked against, at the cost most users' hashes
    have, so that an unknown user takes as long as a wrong password (no user enumeration)."""
    costs = Counter(_cost_of(hashed) for hashed in entries.values())
    cost = costs.most_common(1)[0][0] if costs else DEFAULT_COST
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))


class HtpasswdAuthenticator:
    """Checks credentials against an htpasswd file, reloading it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = secrets.token_bytes(32)
        self._remembered: set[bytes] = set()
        self._reload_lock = asyncio.Lock()
        self._next_check = 0.0
        self._state, self._entries = self._load()
        self._dummy = decoy_hash(self._entries)

    def _load(self) -> tuple[_FileState, dict[str, bytes]]:
        try:
            st = os.stat(self.path)
            text = self.path.read_text()
        except OSError as error:
            raise HtpasswdError(f"cannot read htpasswd file {self.path}: {error.strerror}") from None
        return _FileState(st.st_ino, st.st_size, st.st_mtime_ns), parse_htpasswd(text, str(self.path))

    async def verify(self, user: str, password: str) -> bool:
        await self._reload_if_changed()
        stored = self._entries.get(user)
        token = hmac.new(
            self._key, b"\0".join([user.encode(), password.encode(), stored or b""]), hashlib.sha256
        ).digest()
        if stored is not None and token in self._remembered:
            return True
        matches = await run_blocking(password_matches, password.encode(), stored or self._dummy)
        if not (matches and stored is not None):
            return False
        if len(self._remembered) >= MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered.add(token)
        return True

    async def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now < self._next_check:
            return
        async with self._reload_lock:
            if time.monotonic() < self._next_check:
                return
            self._next_check = time.monotonic() + RELOAD_CHECK_SECONDS
            try:
                st = await run_blocking(os.stat, self.path)
            except OSError as error:
                log.error("htpasswd file %s: %s; keeping the users loaded before", self.path, error)
                return
            if _FileState(st.st_ino, st.st_size, st.st_mtime_ns) == self._state:
                return
            try:
                state, entries = await run_blocking(self._load)
            except HtpasswdError as error:
                log.error("%s; keeping the users loaded before", error)
                return
            self._dummy = await run_blocking(decoy_hash, entries)
            self._state, self._entries = state, entries
            self._remembered.clear()
            log.info("reloaded htpasswd file %s: %d users", self.path, len(self._entries))
