"""Path parameters several routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from backorders.schemas import IDENTIFIER_PATTERN

IdentifierPath = Annotated[str, Path(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
"""A receipt, purchase order, supplier or customer id in a URL."""
