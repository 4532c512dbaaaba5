"""Checks on JSON values: lone surrogates and nesting depth (which parsers let through), and
how many items of a list fit in a response.

The checks walk the value with an explicit stack: a hostile value can nest deeper than Python's
recursion limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, object keys included."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def has_lone_surrogate(value: Any) -> bool:
    """True if a string in ``value`` holds half of a UTF-16 surrogate pair (``"\\ud800"``).

    JSON allows such escapes, but they are not text: they cannot be encoded, stored or embedded.
    """
    for text in _strings(value):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0, ``{}`` is 1)."""
    deepest = 0
    todo = [(value, 0)]
    while todo:
        item, level = todo.pop()
        if isinstance(item, dict):
            todo.extend((child, level + 1) for child in item.values())
            deepest = max(deepest, level + 1)
        elif isinstance(item, list):
            todo.extend((child, level + 1) for child in item)
            deepest = max(deepest, level + 1)
    return deepest


def bounded(items: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
    """The leading items whose JSON fits in ``max_bytes`` (the first always)."""
    size = 0
    for count, item in enumerate(items):
        size += len(json.dumps(item, ensure_ascii=False).encode())
        if size > max_bytes and count:
            return items[:count]
    return items
