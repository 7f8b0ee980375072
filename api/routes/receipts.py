"""Goods receipts from the ERP."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.access import AuditDep
from api.deps import ServicesDep
from api.params import IdentifierPath
from backorders.schemas import ReceiptIn, ReceiptOut
from backorders.services import receipts

router = APIRouter(tags=["receipts"])


@router.post("/receipts", response_model=ReceiptOut, status_code=201,
             responses={200: {"model": ReceiptOut, "description": "Replay of an earlier receipt"},
                        409: {"description": "Same receipt_id with different contents"},
                        422: {"description": "Malformed request or unknown SKU"}})
async def post_receipt(body: ReceiptIn, services: ServicesDep, response: Response,
                       audit: AuditDep) -> ReceiptOut:
    """Add received units and allocate them to the SKU's waiting lines in queue order.

    Idempotent per receipt_id: a replay answers the first result and allocates nothing."""
    result = await receipts.receive(services.engine, body, services.settings,
                                    hand_off=services.hand_off, audit=audit)
    if not result.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return result.receipt


@router.get("/receipts/{receipt_id}", response_model=ReceiptOut)
async def get_receipt(receipt_id: IdentifierPath, services: ServicesDep) -> ReceiptOut:
    return await receipts.get_receipt(services.engine, receipt_id)
