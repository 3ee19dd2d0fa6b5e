"""Build cargobay's container image from the repository's Dockerfile where nothing can be pulled.

No base image can be pulled on the test machines (TESTING.md), so the base is a Debian
bookworm root made with `debootstrap` and `docker import`ed: the "plain Debian bookworm
base whose Python is /usr/bin/python3" the Dockerfile promises to support. debootstrap
takes over a minute, so its tar is cached outside the repository, keyed on everything that
goes into it; the first run on a fresh machine (CI) builds it.

Nothing inside a build can reach PyPI either: the build context is a temporary copy of the
repository's tracked files plus a `wheelhouse/` of every wheel the image needs, made on the
host with `pip wheel` (the route the Dockerfile documents, with `PIP_NO_INDEX=1`).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.docker_engine import DockerCLI
from tests.support.tools import unavailable

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("CARGOBAY_TEST_CACHE", "/var/tmp/cargobay-test-cache"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv")
DEBOOTSTRAP_SECONDS = 900
PIP_SECONDS = 600
BUILD_SECONDS = 900
# What debootstrap leaves that an image does not need: downloaded .debs and apt's lists.
ROOTFS_LEFTOVERS = ("var/cache/apt/archives", "var/lib/apt/lists")


def debian_rootfs_tar() -> Path:
    """A tar of a minimal bookworm root with python3 and venv, from the cache or made now.

    The file name carries a hash of the suite, mirror and package list, so changing any of
    them builds a new tar instead of using a stale one. It is written under a temporary
    name and renamed, so an interrupted run never leaves half a tar under the real name.
    """
    recipe = f"{SUITE} {MIRROR} minbase {','.join(BASE_PACKAGES)}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    tar = CACHE_DIR / f"debian-{SUITE}-minbase-python3-{key}.tar"
    if tar.is_file():
        return tar
    if shutil.which("debootstrap") is None:
        unavailable(f"{tar} is not cached and `debootstrap` is not on PATH (Debian package 'debootstrap')")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=CACHE_DIR) as scratch:
        root = Path(scratch) / "root"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(root),
                MIRROR,
            ],
            DEBOOTSTRAP_SECONDS,
        )
        for leftover in ROOTFS_LEFTOVERS:
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = Path(scratch) / "rootfs.tar"
        _run(["tar", "--create", "--numeric-owner", f"--file={partial}", "-C", str(root), "."], 300)
        os.replace(partial, tar)
    return tar


def import_debian_base(docker: DockerCLI, tag: str) -> str:
    """`docker import` the cached bookworm root as `tag`; returns the image ID."""
    tar = debian_rootfs_tar()
    return docker("import", str(tar), tag, timeout=300).stdout.strip()


def build_context(destination: Path) -> Path:
    """Copy the repository's files as git sees them (as they are on disk), and add a wheelhouse.

    Tracked files plus new ones git does not ignore: what a clean checkout would hold once
    the work is committed, never a developer's virtualenv, caches or old wheelhouse. (Tracked
    files alone would build an image without a module just added and not yet committed.)
    The wheels are built from a second copy, so that setuptools' build/ and *.egg-info
    droppings do not end up in the context either.
    """
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    context = destination / "context"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree but not yet in git
            continue
        target = context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    project = destination / "project"
    shutil.copytree(context, project)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(context / "wheelhouse"),
            str(project),
            "setuptools",
        ],
        PIP_SECONDS,
    )
    return context


def build_image(docker: DockerCLI, context: Path, base: str, tag: str) -> str:
    """`docker build` with the classic builder (DockerCLI sets DOCKER_BUILDKIT=0), offline.

    `--network=none` proves the build needs nothing but the context; PIP_NO_INDEX makes
    pip say so instead of hanging on a PyPI it cannot reach.
    """
    docker(
        "build",
        "--network=none",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--build-arg",
        "PIP_NO_INDEX=1",
        "--tag",
        tag,
        str(context),
        timeout=BUILD_SECONDS,
    )
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def _run(command: list[str], timeout: float) -> None:
    """Run a host command, bounded; a failure raises with its output so the report says why."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}\nstdout:\n{done.stdout[-4000:]}\n"
            f"stderr:\n{done.stderr[-4000:]}"
        )
