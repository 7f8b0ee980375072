"""Sales channels: the registry (admin), platform webhooks (signed, no API key), and the
intakes ops look after."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.access import AuditDep, CallerDep
from api.deps import ServicesDep
from backorders.intake import edi850
from backorders.schemas import CHANNEL_PATTERN, ChannelIn, ChannelOut, IntakeOut, IntakePage
from backorders.services import channels, intake
from backorders.services.errors import NotFound
from backorders.services.intake import Outcome, Rejected

router = APIRouter(tags=["channels"])

ChannelName = Annotated[str, Path(pattern=CHANNEL_PATTERN)]


@router.put("/channels/{name}", response_model=ChannelOut,
            responses={201: {"model": ChannelOut, "description": "Created"}})
async def put_channel(name: ChannelName, body: ChannelIn, services: ServicesDep,
                      response: Response, audit: AuditDep) -> ChannelOut:
    """Create or replace a channel: its kind, webhook secret (write-only; left out, the
    stored one is kept), validation rules and per-account overrides."""
    out, created = await channels.put_channel(services.engine, services.settings, name, body,
                                              audit=audit)
    response.status_code = 201 if created else 200
    return out


@router.get("/channels", response_model=list[ChannelOut])
async def list_channels(services: ServicesDep) -> list[ChannelOut]:
    """Every channel with its intake health: last received, accepted / rejected / dead,
    and the error rate over the last hour."""
    return await channels.list_channels(services.engine)


def _document(status: int, outcome: Outcome) -> Response:
    """An EDI buyer's answer: the 997 itself, with the intake named in headers."""
    assert outcome.document is not None
    headers = {"X-Intake-Id": str(outcome.intake_id), "X-Intake-State": outcome.state}
    if outcome.error is not None:
        headers["X-Intake-Reason"] = outcome.error.code
    return Response(outcome.document, status_code=status, media_type=edi850.CONTENT_TYPE,
                    headers=headers)


def _answer(outcome: Outcome) -> Response:
    status = {"accepted": 200 if outcome.duplicate else 201, "dead": 202}.get(outcome.state, 200)
    if outcome.document is not None:
        return _document(status, outcome)
    return JSONResponse(status_code=status, content=outcome.body())


def _refused(exc: Rejected) -> Response:
    if exc.outcome.document is not None:
        exc.outcome.error = exc.error
        return _document(exc.error.status_code, exc.outcome)
    return JSONResponse(status_code=exc.error.status_code, content={
        "error": exc.error.code, "message": exc.error.message, "field": exc.error.field,
        "intake_id": exc.outcome.intake_id, "state": "rejected"})


INTAKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A redelivery (or a WooCommerce ping), answered as the first was"},
    202: {"description": "Parked as dead (`state`, `reason`): ops will fix and replay it"},
    401: {"description": "The signature is missing or wrong; recorded, nothing else kept"},
    404: {"description": "No such channel"},
    409: {"description": "The order conflicts with an earlier one, or a SKU refuses it"},
    422: {"description": "The payload or a channel rule refused it; `field` names it"},
    503: {"description": "Neither taken in nor recorded: send it again (Retry-After)"},
}


@router.post("/channels/{name}/orders", status_code=201, responses=INTAKE_RESPONSES)
async def channel_order(name: ChannelName, request: Request,
                        services: ServicesDep) -> Response:
    """A platform's own order payload (Shopify `orders/create`, WooCommerce order,
    marketplace order, X12 850), proven by the platform's signature with the channel's
    secret, converted into the one order model and placed as `POST /orders` would. An
    850 is answered with its 997 (`X-Intake-Id`, `X-Intake-State` in headers)."""
    body = await request.body()
    try:
        outcome = await intake.receive(services.engine, services.settings, name, body,
                                       request.headers, path=request.url.path,
                                       hand_off=await services.intake_hand_off())
    except Rejected as exc:
        return _refused(exc)
    return _answer(outcome)


@router.get("/channels/{name}/acknowledgements/{intake_id}",
            responses={200: {"content": {edi850.CONTENT_TYPE: {}},
                             "description": "The X12 855 for the order, as it stands now"}})
async def purchase_order_acknowledgement(
        name: ChannelName, intake_id: Annotated[int, Path(ge=1, le=2**62)],
        services: ServicesDep, caller: CallerDep) -> Response:
    """An EDI buyer's 855: per line accepted (IA), backordered (IB) or partly shipped with
    the balance backordered (BP), with the backordered quantity and expected date. A
    channel key reads its own channel's."""
    if not caller.sees_channel(name):
        raise NotFound("unknown_intake", f"no intake {intake_id} from channel {name!r}",
                       field="intake_id")
    document = await intake.acknowledgement_855(services.engine, name, intake_id)
    return Response(document, media_type=edi850.CONTENT_TYPE)


@router.get("/ops/intake", response_model=IntakePage)
async def list_intake(
    services: ServicesDep,
    state: Annotated[str | None, Query(pattern="^(accepted|rejected|dead)$")] = None,
    channel: Annotated[str | None, Query(pattern=CHANNEL_PATTERN)] = None,
    reason: Annotated[str | None, Query(pattern=r"^[a-z_]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> IntakePage:
    """Dead and rejected intakes (or those of `state`), highest impact first: order
    value, customer tier, age."""
    return await intake.list_intakes(services.engine, state=state, channel=channel,
                                     reason=reason, limit=limit, offset=offset)


@router.post("/ops/intake/{intake_id}/replay", response_model=IntakeOut)
async def replay_intake(intake_id: Annotated[int, Path(ge=1, le=2**62)], request: Request,
                        services: ServicesDep, audit: AuditDep) -> IntakeOut:
    """Take a dead or rejected intake in again through the same flow; one that now
    succeeds links to its order."""
    try:
        await intake.replay(services.engine, services.settings, intake_id,
                            path=request.url.path, hand_off=services.hand_off, audit=audit)
    except Rejected:
        pass  # recorded as rejected again, with the reason
    return await intake.get_intake(services.engine, intake_id)


class BulkReplayIn(BaseModel):
    reason: str = Field(pattern=r"^[a-z_]{1,64}$", description="e.g. unknown_sku")
    channel: str | None = Field(default=None, pattern=CHANNEL_PATTERN)
    limit: int = Field(default=500, ge=1, le=5000)


@router.post("/ops/intake/replay")
async def replay_intakes(body: BulkReplayIn, services: ServicesDep,
                         audit: AuditDep) -> dict[str, Any]:
    """Replay the dead intakes parked for one reason (after the missing product was
    created), highest impact first: how many were accepted, rejected, still dead."""
    return await intake.replay_by_reason(
        services.engine, services.settings, body.reason, channel=body.channel,
        limit=body.limit, audit=audit, hand_off=services.hand_off)
