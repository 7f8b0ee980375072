"""What clients send and what they get back. Validation happens here, at the edge, so a
bad request is refused with the field it got wrong before anything is touched."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from backorders.domain.access import Role
from backorders.domain.customers import AllocationPolicy, Tier
from backorders.domain.lifecycle import AllocationStatus, LineStatus, OrderStatus

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
Sku = Annotated[
    str,
    StringConstraints(pattern=SKU_PATTERN),
    Field(description="Stock keeping unit: letters, digits, '.', '_', '-'; at most 64."),
]
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""No control characters: they are never meant, and PostgreSQL text cannot hold NUL."""
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
"""Printable, and not blank: identifiers are stripped, and an empty one names nothing."""
CHANNEL_PATTERN = r"^[a-z][a-z0-9_\-]{0,31}$"
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128,
                           pattern=IDENTIFIER_PATTERN)
]


def text(max_length: int) -> object:
    """Free text of at most `max_length` characters, without control characters."""
    return StringConstraints(max_length=max_length, pattern=PRINTABLE)



def _whole_number(value: object) -> object:
    """JSON has one number type, so 5.0 is the whole number 5; but "5" and true are not
    numbers and are refused rather than guessed at."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a whole number")
    return value


Quantity = Annotated[int, Field(gt=0, le=1_000_000_000), BeforeValidator(_whole_number)]
Count = Annotated[int, Field(ge=0, le=1_000_000_000), BeforeValidator(_whole_number)]
Flag = Annotated[bool, Field(strict=True)]


def _iso_text(value: object) -> object:
    """Dates and times come as ISO 8601 strings; a bare number (or a query string's
    digits) is not read as a time."""
    if isinstance(value, int | float | bool) or (
            isinstance(value, str) and re.fullmatch(r"\s*[+-]?[0-9.eE+-]+\s*", value)
            and not re.fullmatch(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*", value)):
        raise ValueError("must be an ISO 8601 string")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text)]
Day = Annotated[date, BeforeValidator(_iso_text)]
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"


def _clock(value: object) -> object:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(CLOCK_PATTERN, value):
        raise ValueError("must be a local time as HH:MM or HH:MM:SS")
    return value


ClockTime = Annotated[
    time,
    BeforeValidator(_clock),
    WithJsonSchema({"type": "string", "pattern": CLOCK_PATTERN,
                    "description": "Local wall-clock time, HH:MM or HH:MM:SS."}),
]

MONEY_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
MONEY_MAX = Decimal("9999999999.9999")


def _money(value: object) -> object:
    """A price is a JSON number or a plain decimal string ("12.50"); both are read exactly
    and kept to 4 decimal places, the precision the ledger stores."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string like \"12.50\"")
    if isinstance(value, str):
        if not re.fullmatch(MONEY_PATTERN, value):
            raise ValueError("must be a decimal string like \"12.50\" (at most 4 decimals)")
        return Decimal(value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        exact = Decimal(str(value))
        if not 0 <= exact <= MONEY_MAX:
            return exact  # refused by the bounds below, with their message
        return exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money),
    Field(ge=0, le=MONEY_MAX),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": 9999999999},
            {"type": "string", "pattern": MONEY_PATTERN},
        ],
        "description": "A price: a number, or a decimal string with at most 4 decimals.",
    }),
]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    def fingerprint(self) -> str:
        """A stable hash of the request, to tell a replay from a different request."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()


# --- products and stock -------------------------------------------------------------


class BackorderPolicy(Command):
    allowed: Flag = True
    max_quantity: Count | None = Field(
        default=None, description="Most units of this SKU that may wait at once, across lines."
    )
    discontinued: Flag = False


class ProductIn(Command):
    name: Annotated[str, text(200)] | None = None
    backorder: BackorderPolicy = Field(default_factory=BackorderPolicy)
    allocation_policy: AllocationPolicy = AllocationPolicy.FIFO
    low_stock_threshold: Count | None = Field(
        default=None, description="Purchasing is alerted when available stock falls below this.")
    backorder_until: Day | None = Field(
        default=None, description="No new backorders are accepted after this date.")
    list_price: Money | None = Field(
        default=None, description="The price a channel's price tolerance is checked against.")
    substitutes: list[Sku] = Field(
        default_factory=list, max_length=20, json_schema_extra={"uniqueItems": True},
        description="SKUs offered instead when this one has no supply or is predicted short.")
    supplier_id: Identifier | None = Field(
        default=None, description="Who replenishes it (otherwise its latest purchase order's "
                                  "supplier).")
    lead_time_days: Annotated[int, Field(ge=0, le=730),
                              BeforeValidator(_whole_number)] | None = Field(
        default=None, description="Days from order to receipt, when its supplier's receipts "
                                  "do not say.")

    @field_validator("substitutes")
    @classmethod
    def _each_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each SKU at most once")
        return value


class ProductOut(BaseModel):
    sku: str
    name: str | None
    backorder: BackorderPolicy
    allocation_policy: AllocationPolicy
    low_stock_threshold: int | None = None
    backorder_until: date | None = None
    list_price: Decimal | None = None
    substitutes: list[str] = Field(default_factory=list)
    supplier_id: str | None = None
    lead_time_days: int | None = None
    created_at: datetime
    updated_at: datetime


class StockCountIn(Command):
    on_hand: Count
    reference: Annotated[str, text(128)] | None = Field(
        default=None, description="The count sheet or ERP document behind this figure."
    )


class InventoryOut(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    backordered: int
    allocated: list[AllocationOut] = Field(
        default_factory=list, description="Allocations this change made to waiting lines."
    )


# --- orders ---------------------------------------------------------------------------


class CustomerIn(Command):
    id: Identifier
    email: EmailStr | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[1-9][0-9]{6,14}$")] | None = None
    tier: Tier = Tier.STANDARD


class OrderLineIn(Command):
    sku: Sku
    quantity: Quantity
    unit_price: Money
    promised_date: Day | None = Field(
        default=None, description="The delivery date promised to the customer, if any: "
        "when it passes with units undelivered, the customer and sales are told.")


class OrderIn(Command):
    channel: Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN)] = Field(
        description="Sales channel, e.g. web, retail, marketplace, edi, phone."
    )
    order_number: Identifier
    placed_at: Timestamp | None = Field(
        default=None, description="When the customer placed the order; defaults to now."
    )
    customer: CustomerIn
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)]
    ship_complete: Flag = Field(
        default=False, description="Hold every line until the whole order can ship at once; "
        "by default what is available ships now.")

    @field_validator("placed_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        from datetime import UTC, timedelta

        if value is not None and value > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError("must not be in the future")
        return value


class CancelIn(Command):
    reason: Annotated[str, text(500)] | None = None
    line_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="Cancel only these lines; all lines when omitted."
    )


class CustomerOut(BaseModel):
    id: str
    email: str | None
    phone: str | None
    tier: Tier


_LIKELY = ("When the waiting units will likely arrive: the covering purchase order's "
           "promise shifted by its supplier's usual delay (ETA_LIKELY_QUANTILE of its past "
           "delays), never before expected_date, plus handling time; equal to expected_date "
           "when the supplier has no delivery history.")
_LATEST = ("The same with ETA_LATEST_QUANTILE: the date the waiting units should arrive by; "
           "never before likely_date.")


class OrderLineOut(BaseModel):
    id: uuid.UUID
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    fulfillable_quantity: int = Field(description="Reserved from stock when the order came in.")
    backordered_quantity: int = Field(description="Still waiting for stock.")
    in_progress_quantity: int = Field(description="Allocated and on its way through dispatch.")
    shipped_quantity: int
    cancelled_quantity: int
    promised_date: date | None = None
    queue_position: int | None = None
    expected_date: date | None = None
    likely_date: date | None = Field(default=None, description=_LIKELY)
    latest_date: date | None = Field(default=None, description=_LATEST)
    no_supply: bool = False
    status: LineStatus
    workflow_id: str


class OrderOut(BaseModel):
    id: uuid.UUID
    channel: str
    order_number: str
    placed_at: datetime
    status: OrderStatus
    order_value: Decimal
    customer: CustomerOut
    lines: list[OrderLineOut]
    ship_complete: bool = False
    released_at: datetime | None = Field(
        default=None, description="For ship-complete orders: when every unit was in hand.")
    created_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


# --- receipts and allocation ----------------------------------------------------------


class ReceiptIn(Command):
    receipt_id: Identifier = Field(description="The ERP's goods receipt id; the idempotency key.")
    sku: Sku
    quantity: Quantity
    purchase_order: Identifier | None = None


class AllocationOut(BaseModel):
    allocation_id: uuid.UUID
    line_id: uuid.UUID
    order_id: uuid.UUID
    quantity: int


class ReceiptOut(BaseModel):
    receipt_id: str
    sku: str
    quantity: int
    purchase_order: str | None
    received_at: datetime
    allocated_quantity: int
    to_stock_quantity: int = Field(description="Units left over after the queue, now available.")
    allocations: list[AllocationOut]


# --- backorder views ------------------------------------------------------------------


class BackorderOut(BaseModel):
    line_id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    channel: str
    sku: str
    customer_id: str
    customer_tier: Tier
    quantity: int
    backordered_quantity: int
    in_progress_quantity: int
    shipped_quantity: int
    cancelled_quantity: int
    status: LineStatus
    queue_position: int | None = Field(
        description="1 is served first by the next receipt; null when nothing waits."
    )
    units_ahead: int | None = Field(description="Units waiting ahead of this line in its queue.")
    expected_date: date | None = Field(
        default=None, description="When the waiting units should arrive: the queue walked "
        "against open purchase orders, plus handling time.")
    likely_date: date | None = Field(default=None, description=_LIKELY)
    latest_date: date | None = Field(default=None, description=_LATEST)
    no_supply: bool = Field(default=False,
                            description="No open purchase order covers the waiting units.")
    placed_at: datetime
    backordered_at: datetime
    age_seconds: int
    workflow_id: str


class AllocationDetail(BaseModel):
    allocation_id: uuid.UUID
    quantity: int
    source: str
    receipt_id: str | None
    status: AllocationStatus
    tracking_number: str | None
    created_at: datetime
    dispatched_at: datetime | None


class TimelineEventOut(BaseModel):
    at: datetime
    kind: str
    message: str
    data: dict


class BackorderDetailOut(BackorderOut):
    allocations: list[AllocationDetail]
    timeline: list[TimelineEventOut]
    substitutes: list[SubstituteOut] = Field(
        default_factory=list,
        description="When no supply covers the waiting units: the product's substitutes "
                    "that are in stock now, to offer the customer instead.")


class BackorderPage(BaseModel):
    items: list[BackorderOut]
    total: int
    limit: int
    offset: int


InventoryOut.model_rebuild()


# --- notifications ----------------------------------------------------------------------

NotifyChannel = Literal["email", "sms", "push"]


TimeZone = Annotated[
    str,
    WithJsonSchema({"type": "string", "enum": sorted(available_timezones()),
                    "description": "An IANA time zone, e.g. Europe/Paris."}),
]


class QuietHours(Command):
    start: ClockTime = Field(description="Local time the quiet hours begin, e.g. 21:00.")
    end: ClockTime = Field(description="Local time they end, e.g. 08:00 (may be past midnight).")


class PreferencesIn(Command):
    channels: Annotated[list[NotifyChannel], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: ["email"], json_schema_extra={"uniqueItems": True},
        description="Channels in order of preference; later ones are fallbacks.")
    digest: Literal["instant", "daily"] = "instant"
    timezone: TimeZone = "UTC"
    quiet_hours: QuietHours | None = None
    opted_out: Annotated[list[NotifyChannel], Field(max_length=3)] = Field(
        default_factory=list, json_schema_extra={"uniqueItems": True},
        description="Channels never to use, whatever else is set.")
    segments: Annotated[list[Identifier], Field(max_length=20)] = Field(
        default_factory=list, description="Segments the customer belongs to; some may be "
        "excluded from notifications by configuration.")
    push_token: Annotated[str, text(512)] | None = None
    app_active_until: Timestamp | None = Field(
        default=None, description="The app session is active until then: push comes first.")

    @field_validator("channels", "opted_out")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each channel at most once")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like "
                             "Europe/Paris") from None
        return value


class PreferencesOut(BaseModel):
    customer_id: str
    channels: list[str]
    digest: str
    timezone: str
    quiet_hours: QuietHours | None
    opted_out: list[str]
    segments: list[str]
    push_token: str | None
    app_active_until: datetime | None
    updated_at: datetime


class NotificationOut(BaseModel):
    id: int
    event: str
    audience: str
    status: str = Field(description="pending, queued, sent, suppressed, failed or digested")
    reason: str | None = Field(description="Why it was queued, suppressed or failed.")
    customer_id: str | None
    order_id: uuid.UUID | None
    line_id: uuid.UUID | None
    sku: str | None
    channels: list[str] = Field(description="The channels it may go out on, in order.")
    channel: str | None = Field(description="The channel it went out on.")
    recipient: str | None
    subject: str | None
    body_text: str | None
    attempts: int
    attempt_log: list[dict[str, Any]]
    provider_id: str | None
    digest_id: int | None
    event_at: datetime
    created_at: datetime
    send_after: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    total: int
    limit: int
    offset: int


class DelayIn(Command):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=PRINTABLE)]


# --- supply ---------------------------------------------------------------------------


class SupplierIn(Command):
    id: Identifier
    name: Annotated[str, text(200)] | None = None


class PurchaseOrderLineIn(Command):
    sku: Sku
    quantity: Count
    expected_at: Day = Field(description="When the supplier says the units will arrive.")


class PurchaseOrderIn(Command):
    supplier: SupplierIn
    status: Literal["open", "cancelled"] = "open"
    lines: Annotated[list[PurchaseOrderLineIn], Field(max_length=500)] = Field(
        description="Every line as the ERP has it now, one per SKU; a line left out is "
        "cancelled.")

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, value: list[PurchaseOrderLineIn]) -> list[PurchaseOrderLineIn]:
        skus = [ln.sku for ln in value]
        if len(set(skus)) != len(skus):
            raise ValueError("one line per SKU")
        return value


class PurchaseOrderLineOut(BaseModel):
    sku: str
    quantity: int
    received_quantity: int
    expected_at: date
    promised_at: date = Field(description="The first date promised, for supplier statistics.")
    cancelled: bool


class PurchaseOrderOut(BaseModel):
    po_number: str
    supplier: SupplierIn
    status: str
    lines: list[PurchaseOrderLineOut]
    created_at: datetime
    updated_at: datetime


class SupplierPerformanceOut(BaseModel):
    sku: str
    receipts: int
    units: int
    on_time_rate: float = Field(description="Share of receipts on or before the promised date.")
    average_delay_days: float
    worst_delay_days: int
    backorder_unit_days: int = Field(
        description="Days late times units that went straight to waiting lines: the waiting "
        "this supplier caused.")


class SupplierOut(BaseModel):
    id: str
    name: str | None
    receipts: int
    on_time_rate: float | None
    average_delay_days: float | None
    backorder_unit_days: int
    skus: list[SupplierPerformanceOut]


class RefundOut(BaseModel):
    id: int
    line_id: uuid.UUID
    order_id: uuid.UUID
    customer_id: str
    sku: str
    quantity: int
    amount: Decimal
    reason: str
    created_at: datetime


# --- access control -------------------------------------------------------------------


class KeyIn(Command):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100,
                                           pattern=IDENTIFIER_PATTERN)]
    role: Role
    channel: Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN)] | None = Field(
        default=None, description="Required for, and only for, the `channel` role: the one "
        "sales channel this key places and reads orders for.")


class KeyOut(BaseModel):
    id: str
    name: str
    role: Role
    channel: str | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    created_by: str | None = None


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself. Shown this once: only a keyed hash is kept.")


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    key_id: str | None
    actor: str = Field(description="The key's name, `cli`, or the webhook that acted.")
    role: str | None
    method: str
    path: str
    resource: str | None
    outcome: Literal["accepted", "rejected", "failed"]
    status: int | None = Field(description="The HTTP status of a refused or failed request.")
    detail: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]


# --- channels and intake -------------------------------------------------------------------

ChannelKind = Literal["native", "shopify", "woocommerce", "marketplace", "edi850"]
Fraction = Annotated[
    Decimal,
    BeforeValidator(_money),
    Field(ge=0, le=10),
    WithJsonSchema({
        "anyOf": [{"type": "number", "minimum": 0, "maximum": 10},
                  {"type": "string", "pattern": r"^(10(\.0{1,4})?|[0-9](\.[0-9]{1,4})?)$"}],
        "description": "A fraction: 0.05 is 5%; a number or a decimal string.",
    }),
]


class AccountRules(Command):
    """Overrides of a channel's rules for one account (a customer id, or `tier:<tier>`)."""

    require_email: Flag | None = None
    require_phone: Flag | None = None
    require_contact: Flag | None = None
    max_lines: Annotated[int, Field(ge=1, le=500)] | None = None
    price_tolerance: Fraction | None = None


class ChannelRules(Command):
    require_email: Flag = False
    require_phone: Flag = False
    require_contact: Flag = Field(default=False, description="An email or a phone.")
    max_lines: Annotated[int, Field(ge=1, le=500)] | None = None
    price_tolerance: Fraction | None = Field(
        default=None, description="How far a line's unit price may be from the product's "
        "list price, as a fraction of it (0.1: within 10%); products without a list price "
        "are not checked.")
    sku_map: Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=128,
                                                             pattern=PRINTABLE)], Sku],
                       Field(max_length=10_000),
                       WithJsonSchema({
                           "type": "object", "maxProperties": 10_000,
                           "propertyNames": {"minLength": 1, "maxLength": 128,
                                             "pattern": PRINTABLE},
                           "additionalProperties": {"type": "string",
                                                    "pattern": SKU_PATTERN}})] = Field(
        default_factory=dict, description="The channel's own SKU → ours.")


class ChannelIn(Command):
    kind: ChannelKind
    secret: Annotated[SecretStr, Field(min_length=16, max_length=512)] | None = Field(
        default=None, description="Write-only: the secret the platform signs its webhooks "
        "with. Required for every kind but native (whose orders come with a channel key).")
    validation: ChannelRules = Field(default_factory=ChannelRules)
    accounts: Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=134,
                                                              pattern=IDENTIFIER_PATTERN)],
                             AccountRules], Field(max_length=10_000),
                        WithJsonSchema({
                            "type": "object", "maxProperties": 10_000,
                            "propertyNames": {"minLength": 1, "maxLength": 134,
                                              "pattern": IDENTIFIER_PATTERN},
                            "additionalProperties": AccountRules.model_json_schema()})] = Field(
        default_factory=dict, description="Per account: a customer id, or `tier:gold`.")
    default_region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = Field(
        default="US", description="Country a phone number without a country code is read in.")


class ChannelHealth(BaseModel):
    last_received_at: datetime | None
    accepted: int
    rejected: int
    dead: int
    received_last_hour: int
    error_rate_last_hour: float | None = Field(
        description="Rejected and dead ÷ received in the last hour.")


class ChannelOut(BaseModel):
    name: str
    kind: ChannelKind
    has_secret: bool
    validation: ChannelRules
    accounts: dict[str, AccountRules]
    default_region: str
    created_at: datetime
    updated_at: datetime
    health: ChannelHealth


IntakeState = Literal["accepted", "rejected", "dead"]


class IntakeOut(BaseModel):
    id: int
    channel: str
    state: IntakeState
    reason: str | None = Field(description="The rule or error code that ended it so.")
    message: str | None
    field: str | None
    signature: str = Field(description="valid, invalid, missing, or key (a native API key)")
    delivery_id: str | None
    deliveries: int = Field(description="Times the platform delivered this payload.")
    order_number: str | None
    order_id: uuid.UUID | None
    order_value: Decimal | None
    customer_tier: str | None
    attempts: int
    received_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None


class IntakePage(BaseModel):
    items: list[IntakeOut]
    total: int


# --- Forecasting (F21) -------------------------------------------------------------------


class DemandDayOut(BaseModel):
    date: date
    ordered: int = Field(description="Units asked for that day, backordered ones included.")
    cancelled: int = Field(description="Units cancelled that day before they shipped.")
    by_channel: dict[str, int]


class DemandWeekOut(BaseModel):
    week_start: date
    ordered: float


class ForecastWeekOut(BaseModel):
    week_start: date
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class ProjectedWeekOut(BaseModel):
    week_start: date
    demand: float
    arriving: int
    projected: float = Field(description="Available at the week's end; below zero is short.")
    short: float = Field(description="New backorder units this week if nothing is done.")


class SubstituteOut(BaseModel):
    sku: str
    name: str | None
    available: int


class ReplenishmentOut(BaseModel):
    sku: str
    name: str | None
    supplier_id: str | None
    lead_time_days: float
    lead_time_sd_days: float
    lead_time_measured: bool = Field(
        description="From the supplier's receipts; otherwise the product's or the default.")
    available: int = Field(description="On hand less reserved less what waiting lines ask for.")
    incoming: int
    safety_stock: int
    reorder_point: int
    suggested_quantity: int
    order_by: date | None
    stockout_date: date | None
    predicted_backorder_units: float
    backorder_units_avoided: float
    substitutes: list[SubstituteOut]


class ForecastOut(BaseModel):
    sku: str
    computed_at: datetime
    model: str
    pattern: str = Field(description="smooth, erratic, intermittent, lumpy, too_short or "
                                     "no_demand")
    fallback: bool = Field(description="Too little history for a backtest: a conservative "
                                       "average instead of a fitted model.")
    history_weeks: int
    backtest_mae: float | None
    backtest_mase: float | None
    history: list[DemandDayOut]
    weekly_history: list[DemandWeekOut]
    forecast: list[ForecastWeekOut]
    projection: list[ProjectedWeekOut]
    stockout_date: date | None = Field(
        description="The first day projected short; null when none within the horizon.")
    predicted_backorder_units: float
    replenishment: ReplenishmentOut


BackorderDetailOut.model_rebuild()  # its substitutes are SubstituteOut, defined above it
