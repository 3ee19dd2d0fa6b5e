"""Repository names and tags, validated with the OCI distribution grammar.

A name becomes part of a storage path, so validation is also what keeps a
hostile name (`../`, `%2e%2e`, absolute paths) out of the file system.
"""

import re

from cargobay.registry.errors import NameInvalid, TagInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255  # registry:2's limit, so names move freely between the two


def validate_name(name: str) -> str:
    """Return `name` if it is a valid repository name, else raise `NameInvalid`."""
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    if not _NAME.match(name):
        raise NameInvalid(
            f"invalid repository name {name[:100]!r}: use lowercase letters, digits and "
            "separators (., _, __, -) in path components joined by /"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag, else raise `TagInvalid`."""
    if not _TAG.match(tag):
        raise TagInvalid(
            f"invalid tag {tag[:200]!r}: up to 128 characters of letters, digits, _ . -, "
            "not starting with . or -"
        )
    return tag
