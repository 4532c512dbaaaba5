"""Metadata filters: a small language over top-level metadata fields, parsed into conditions.

``{"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}, "draft": false}``: every field's
conditions must hold. A bare value means ``$eq``. The parsed form (a tuple of ``Condition``) is
plain data: each database translates a condition its own way (``Dialect.metadata_condition``),
and so could a vector index that filters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import BadRequest

if TYPE_CHECKING:  # the dialects import this module's Condition
    from app.store.dialect import Dialect

OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
RANGE = ("$gt", "$gte", "$lt", "$lte")
# The ISO 8601 forms SQLite's date functions read: a date, optionally a time and an offset.
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True)
class Condition:
    """One test of one metadata field: ``field op value``."""

    field: str
    op: str
    value: Any  # a scalar; a tuple of scalars for $in/$nin; a bool for $exists


@dataclass(frozen=True)
class Filters:
    """Which documents may match: all given conditions hold (an empty filter allows all).

    ``metadata`` is the filter as sent; it is parsed (and checked) into ``conditions`` at once.
    """

    document_ids: tuple[int, ...] = ()
    source_types: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", parse_metadata(self.metadata))

    def __bool__(self) -> bool:
        """Whether any condition is set."""
        return bool(self.document_ids or self.source_types or self.conditions)


def parse_metadata(raw: dict[str, Any], param: str = "filters.metadata") -> tuple[Condition, ...]:
    """The conditions a metadata filter stands for; BadRequest naming what is wrong."""
    conditions = []
    for name, spec in raw.items():
        where = f"{param}.{name}"
        if isinstance(spec, dict) and spec:
            conditions += [_condition(name, op, value, where) for op, value in spec.items()]
        else:
            conditions.append(_condition(name, "$eq", spec, where))
    return tuple(conditions)


def _condition(field: str, op: str, value: Any, where: str) -> Condition:
    if op not in OPERATORS:
        raise BadRequest(
            f"Unknown filter operator {op!r} in '{where}': use one of {', '.join(OPERATORS)}.",
            param=where,
            code="invalid_filter",
        )
    if op in ("$eq", "$ne"):
        _check_scalar(value, op, where)
    elif op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise _bad(f"'{op}' takes a list of values", where)
        for item in value:
            _check_scalar(item, op, where)
        value = tuple(value)
    elif op == "$exists":
        if not isinstance(value, bool):
            raise _bad("'$exists' takes true or false", where)
    elif not is_number(value) and not (isinstance(value, str) and ISO_DATE.match(value)):
        raise _bad(f"'{op}' takes a number or an ISO 8601 date such as '2024-05-31'", where)
    return Condition(field, op, value)


def is_number(value: Any) -> bool:
    """A finite number SQLite can hold (bools are not numbers here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def _check_scalar(value: Any, op: str, where: str) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not is_number(value):
        raise _bad(f"'{op}' takes finite numbers that fit in 64 bits", where)
    if value is not None and not isinstance(value, str | int | float | bool):
        raise _bad(f"'{op}' takes a string, number, boolean or null", where)


def _bad(message: str, where: str) -> BadRequest:
    return BadRequest(f"{message} (in '{where}').", param=where, code="invalid_filter")


def where_sql(filters: Filters, dialect: Dialect) -> tuple[str, list[Any]]:
    """An SQL condition on ``documents`` holding when every condition does, and its params."""
    parts: list[str] = []
    params: list[Any] = []
    if filters.document_ids:
        parts.append(dialect.in_ids("documents.id"))
        params.append(dialect.id_list(filters.document_ids))
    if filters.source_types:
        parts.append(dialect.in_ids("documents.source_type"))
        params.append(dialect.id_list(filters.source_types))
    for condition in filters.conditions:
        sql, values = dialect.metadata_condition(condition)
        parts.append(sql)
        params += values
    return " AND ".join(parts) or "1 = 1", params
