"""Supply from the ERP: purchase orders, supplier performance, and the refunds that
discontinued SKUs leave behind."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import AuditDep
from api.deps import ServicesDep
from api.params import IdentifierPath
from backorders.schemas import (
    IDENTIFIER_PATTERN,
    SKU_PATTERN,
    PurchaseOrderIn,
    PurchaseOrderOut,
    RefundOut,
    SupplierOut,
)
from backorders.services import inventory, purchase_orders, suppliers

router = APIRouter(tags=["supply"])

PoPath = IdentifierPath
SupplierPath = IdentifierPath


@router.put("/purchase-orders/{po_number}", response_model=PurchaseOrderOut,
            responses={201: {"model": PurchaseOrderOut, "description": "Created"}})
async def put_purchase_order(po_number: PoPath, body: PurchaseOrderIn, services: ServicesDep,
                             response: Response, audit: AuditDep) -> PurchaseOrderOut:
    """The purchase order as the ERP has it now: expected dates, quantities, lines left
    out (cancelled), or `status: cancelled`. Waiting lines are re-dated at once and
    customers whose date moved by more than a day are told."""
    po, created = await purchase_orders.put_purchase_order(
        services.engine, po_number, body, services.settings, hand_off=services.hand_off,
        audit=audit)
    response.status_code = 201 if created else 200
    return po


@router.get("/purchase-orders/{po_number}", response_model=PurchaseOrderOut)
async def get_purchase_order(po_number: PoPath, services: ServicesDep) -> PurchaseOrderOut:
    return await purchase_orders.get_purchase_order(services.engine, po_number)


@router.get("/suppliers", response_model=list[SupplierOut])
async def list_suppliers(services: ServicesDep) -> list[SupplierOut]:
    """Suppliers ranked by the waiting they caused (late days times units that went
    straight to waiting lines), then by on-time rate."""
    return await suppliers.list_suppliers(services.engine)


@router.get("/suppliers/{supplier_id}/performance", response_model=SupplierOut)
async def supplier_performance(supplier_id: SupplierPath, services: ServicesDep) -> SupplierOut:
    """Per SKU: promised versus actual receipt dates, on-time rate, average and worst
    delay, and the backorder unit-days caused."""
    return await suppliers.supplier_performance(services.engine, supplier_id)


@router.get("/refunds", response_model=list[RefundOut])
async def list_refunds(
    services: ServicesDep,
    sku: Annotated[str | None, Query(pattern=SKU_PATTERN)] = None,
    customer_id: Annotated[str | None, Query(max_length=128, pattern=IDENTIFIER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[RefundOut]:
    """Refunds owed for lines cancelled because their SKU was discontinued."""
    rows = await inventory.list_refunds(services.engine, sku=sku, customer_id=customer_id,
                                        limit=limit, offset=offset)
    return [RefundOut.model_validate(r._mapping) for r in rows]
