"""Digests, names, tags and pagination: the grammar that keeps hostile input out of storage."""

import pytest

from cargobay.registry.digests import Digest
from cargobay.registry.errors import DigestInvalid, NameInvalid, PaginationNumberInvalid, TagInvalid
from cargobay.registry.names import validate_name, validate_tag
from cargobay.registry.pagination import paginate, parse_page_size

SHA256 = "sha256:" + "a" * 64


def test_digest_parse_and_print() -> None:
    digest = Digest.parse(SHA256)
    assert (digest.algorithm, digest.hex, str(digest)) == ("sha256", "a" * 64, SHA256)
    assert Digest.parse("sha512:" + "0" * 128).algorithm == "sha512"
    assert str(Digest.of(b"")) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "sha256:../../etc",
        "SHA256:" + "a" * 64,
    ],
)
def test_invalid_digests(text: str) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(text)


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d-e--f/g", "x0/y1/z2", "a" * 255])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "..",
        "a/../b",
        "a/./b",
        "-a",
        "a-",
        "a_",
        "a___b",
        "a b",
        "a" * 256,
        "a\x00b",
        "a%2fb",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(NameInvalid):
        validate_name(name)


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "_under", "A" * 128, "ci-build_42.x"])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "-dash", "A" * 129, "a/b", "a:b", "../x"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(TagInvalid):
        validate_tag(tag)


def test_pagination() -> None:
    items = ["a", "b", "c"]
    assert paginate(items, None, None).items == items
    page = paginate(items, 2, None)
    assert (page.items, page.more) == (["a", "b"], True)
    assert paginate(items, 2, "b").items == ["c"]
    assert paginate(items, 0, None).items == []
    assert parse_page_size("5000", 1000) == 1000
    with pytest.raises(PaginationNumberInvalid):
        parse_page_size("-1", 1000)
