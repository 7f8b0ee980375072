"""API keys, for admins: create one per caller and role, list them, revoke them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.access import AuditDep, CallerDep
from api.deps import ServicesDep
from backorders.schemas import KeyIn, KeyOut, NewKeyOut
from backorders.services import keys

router = APIRouter(prefix="/admin", tags=["access"])

KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's public id")]


@router.post("/keys", response_model=NewKeyOut, status_code=201)
async def create_key(body: KeyIn, services: ServicesDep, caller: CallerDep,
                     audit: AuditDep) -> NewKeyOut:
    """A new key for one role (and, for a channel key, one channel). The key is in this
    answer only: store it now."""
    return await keys.create(services.engine, services.settings, body, by=caller, audit=audit)


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(services: ServicesDep) -> list[KeyOut]:
    """Every key ever made, revoked ones included; never a secret or its hash."""
    return await keys.list_keys(services.engine)


@router.delete("/keys/{key_id}", response_model=KeyOut,
               responses={409: {"description": "The last working admin key"}})
async def revoke_key(key_id: KeyIdPath, services: ServicesDep, audit: AuditDep) -> KeyOut:
    """Revoke a key: refused from the next request on, in every API process."""
    return await keys.revoke(services.engine, services.settings, key_id, audit=audit)
