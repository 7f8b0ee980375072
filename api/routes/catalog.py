"""Products, their backorder and allocation policies, and counted stock (the ERP's side)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.access import AuditDep
from api.deps import ServicesDep
from backorders.schemas import SKU_PATTERN, InventoryOut, ProductIn, ProductOut, StockCountIn
from backorders.services import inventory

router = APIRouter(tags=["products and stock"])

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description="Stock keeping unit")]


@router.put("/products/{sku}", response_model=ProductOut,
            responses={201: {"model": ProductOut, "description": "Created"}})
async def put_product(sku: SkuPath, body: ProductIn, services: ServicesDep,
                      response: Response, audit: AuditDep) -> ProductOut:
    """Create or update a product with its backorder policy and allocation policy."""
    result = await inventory.put_product(services.engine, sku, body, services.settings,
                                         hand_off=services.hand_off, audit=audit)
    response.status_code = 201 if result.created else 200
    return result.product


@router.get("/products/{sku}", response_model=ProductOut)
async def get_product(sku: SkuPath, services: ServicesDep) -> ProductOut:
    return await inventory.get_product(services.engine, sku)


@router.put("/inventory/{sku}", response_model=InventoryOut)
async def count_stock(sku: SkuPath, body: StockCountIn, services: ServicesDep,
                      audit: AuditDep) -> InventoryOut:
    """Set the counted on-hand quantity. An increase serves waiting lines like a receipt."""
    return await inventory.count_stock(services.engine, sku, body, services.settings,
                                       hand_off=services.hand_off, audit=audit)


@router.get("/inventory/{sku}", response_model=InventoryOut)
async def get_inventory(sku: SkuPath, services: ServicesDep) -> InventoryOut:
    return await inventory.get_inventory(services.engine, sku)
