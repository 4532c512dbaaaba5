"""The filter part of request bodies: which documents may match (search, neighbours, listings)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from app.api.deps import SQLITE_MAX_INT
from app.errors import BadRequest
from app.store.filters import OPERATORS, Filters


class FiltersIn(BaseModel):
    """Which documents may match; every given condition must hold."""

    # Strict: nothing is coerced ("1" stays a string); the store compares JSON types too.
    model_config = ConfigDict(extra="forbid", strict=True)

    document_ids: list[Annotated[StrictInt, Field(ge=1, le=SQLITE_MAX_INT)]] = Field(
        default_factory=list, description="Only these."
    )
    source_types: list[StrictStr] = Field(
        default_factory=list, description="Only these source types, e.g. 'md' or 'pdf'."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Conditions on top-level metadata fields: a value (equals) or operators, "
        'e.g. `{"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}}`; operators: '
        + ", ".join(f"`{op}`" for op in OPERATORS)
        + ". Ranges take numbers or ISO 8601 dates.",
    )

    def domain(self) -> Filters:
        """The store's filters (the metadata conditions parsed and checked)."""
        return Filters(tuple(self.document_ids), tuple(self.source_types), self.metadata)


def parse_filters(raw: str | None) -> Filters | None:
    """The ``filters`` query parameter: JSON in the shape /api/search takes."""
    if raw is None:
        return None
    try:
        return FiltersIn.model_validate_json(raw).domain()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["filters", *(str(part) for part in first["loc"])])
        raise BadRequest(f"Invalid value for '{where}': {first['msg']}.", param=where) from None
