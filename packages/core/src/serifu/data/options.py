"""Reader options: each data source validates its ``options`` mapping with a pydantic model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from serifu.errors import SerifuError

M = TypeVar("M", bound=BaseModel)


def parse_options(model: type[M], options: Mapping[str, Any] | None, source_id: str) -> M:
    """Validate reader options; unknown keys or bad values are a :class:`SerifuError`."""
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as exc:
        known = ", ".join(sorted(model.model_fields))
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: "
            + ("unknown option" if err["type"] == "extra_forbidden" else err["msg"])
            for err in exc.errors()
        )
        raise SerifuError(
            f"invalid options for data source {source_id!r}: {problems}. Known options: {known}."
        ) from None
