"""Substitutes a product lists that can be sold instead right now: in stock (on hand less
reserved less what their own waiting lines ask for) and not discontinued. Offered for
lines no supply covers and for SKUs predicted to run short."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from backorders.schemas import SubstituteOut

_IN_STOCK = sa.text(
    """
    SELECT p.sku, p.name, s.on_hand - s.reserved - s.backordered AS available
    FROM products p JOIN stock s ON s.sku = p.sku
    WHERE p.sku = ANY(:skus) AND NOT p.discontinued
      AND s.on_hand - s.reserved - s.backordered > 0
    """
)


async def in_stock(conn: AsyncConnection, listed: Sequence[str]) -> list[SubstituteOut]:
    """Of `listed` (a product's substitutes, in its order), those with stock now."""
    return (await in_stock_for(conn, {"": listed}))[""]


async def in_stock_for(conn: AsyncConnection,
                       listed_by_sku: dict[str, Sequence[str]]) -> dict[str, list[SubstituteOut]]:
    """`in_stock` for several products in one query."""
    every = sorted({s for listed in listed_by_sku.values() for s in listed})
    if not every:
        return {sku: [] for sku in listed_by_sku}
    found = {r.sku: r for r in (await conn.execute(_IN_STOCK, {"skus": every}))}
    return {sku: [SubstituteOut(sku=s, name=found[s].name, available=int(found[s].available))
                  for s in listed if s in found] for sku, listed in listed_by_sku.items()}
