"""`n` and `last` pagination, shared by the tag list and the catalog."""

from dataclasses import dataclass

from cargobay.registry.errors import PaginationNumberInvalid


@dataclass(frozen=True)
class Page:
    items: list[str]
    more: bool  # a further page exists after `items[-1]`


def parse_page_size(text: str | None, maximum: int) -> int | None:
    """The `n` query parameter, or None for 'everything'; values above `maximum` are capped."""
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise PaginationNumberInvalid(f"n must be a non-negative integer, not {text[:50]!r}")
    return min(int(text), maximum)


def paginate(sorted_items: list[str], n: int | None, last: str | None) -> Page:
    """The items after `last` (exclusive), at most `n` of them."""
    items = [i for i in sorted_items if i > last] if last else sorted_items
    if n is None or len(items) <= n:
        return Page(items, more=False)
    if n == 0:
        return Page([], more=False)  # nothing to continue after
    return Page(items[:n], more=True)
