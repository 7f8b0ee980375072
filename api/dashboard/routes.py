"""The dashboard: server-rendered pages for ops and parts managers, signed in with an
ops or admin key. Pages poll themselves (htmx) so their numbers stay live; every filter
lives in the URL so a view can be bookmarked and shared. Access is the gate's, as for
every route (`api.access.RULES`, `page(...)`)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from api.access import get_audit
from api.dashboard import format as fmt
from api.dashboard import session
from api.deps import ServicesDep
from backorders.domain.access import Role
from backorders.domain.customers import Tier
from backorders.domain.kpis import KPIS
from backorders.domain.lifecycle import LineStatus
from backorders.schemas import CHANNEL_PATTERN, IDENTIFIER_PATTERN, SKU_PATTERN, ForecastOut
from backorders.services import (
    board,
    forecasts,
    intake,
    keys,
    kpis,
    notifications,
    outbox_ops,
    suppliers,
    views,
)
from backorders.services.board import BoardFilter, Sort, View
from backorders.services.errors import DomainError
from backorders.services.kpis import Period, Scope
from backorders.services.notifications import NotificationQuery

router = APIRouter(prefix="/dashboard", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
fmt.install(templates.env)

PER_PAGE = 50
NAV = (("overview", "/dashboard", "Overview"), ("backorders", "/dashboard/backorders", "Backorders"),
       ("products", "/dashboard/products", "Products"), ("suppliers", "/dashboard/suppliers", "Suppliers"),
       ("replenishment", "/dashboard/replenishment", "Replenishment"),
       ("notifications", "/dashboard/notifications", "Notifications"),
       ("operations", "/dashboard/operations", "Operations"))
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(request: Request, template: str, section: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    found = request.scope.get("state", {}).get("session")
    response = templates.TemplateResponse(request, template, status_code=status_code, context={
        "caller": request.state.caller, "csrf": found.csrf if found else "", "nav": NAV,
        "section": section, "sort_link": None,
        "refresh": f"{request.app.state.services.settings.dashboard_refresh_seconds:g}",
        "page_link": lambda n: "?" + urlencode({**request.query_params, "page": n}),
        "now_iso": datetime.now(UTC).isoformat(), "now_text": fmt.when(datetime.now(UTC)),
        **context})
    response.headers.update(SECURITY_HEADERS)
    return response


class Problems:
    """What was wrong with a page's query: shown on the page, the filter left out."""

    def __init__(self, request: Request) -> None:
        self.query = request.query_params
        self.errors: list[str] = []

    def text(self, name: str, *, pattern: str = IDENTIFIER_PATTERN,
             max_length: int = 128) -> str | None:
        import re

        value = (self.query.get(name) or "").strip()
        if not value:
            return None
        if len(value) > max_length or not re.fullmatch(pattern, value):
            self.errors.append(f"{name}: {value[:40]!r} is not valid")
            return None
        return value

    def whole(self, name: str, *, low: int = 0, high: int = 100_000) -> int | None:
        value = (self.query.get(name) or "").strip()
        if not value:
            return None
        if not (value.isascii() and value.isdecimal()) or not low <= int(value) <= high:
            self.errors.append(f"{name}: must be a whole number from {low} to {high}")
            return None
        return int(value)

    def choice(self, name: str, options: list[str]) -> str | None:
        value = (self.query.get(name) or "").strip()
        if not value:
            return None
        if value not in options:
            self.errors.append(f"{name}: must be one of {', '.join(options)}")
            return None
        return value

    def day(self, name: str) -> date | None:
        value = (self.query.get(name) or "").strip()
        if not value:
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            self.errors.append(f"{name}: must be a date as YYYY-MM-DD")
            return None
        if not date(1970, 1, 1) <= day < date(2100, 1, 1):
            self.errors.append(f"{name}: must be between 1970 and 2099")
            return None
        return day


def _period(problems: Problems) -> tuple[Period, date, date]:
    today = datetime.now(UTC).date()
    last = problems.day("to") or today
    first = problems.day("from") or last - timedelta(days=29)
    if first > last:
        problems.errors.append("from: must not be after `to`")
        first, last = last - timedelta(days=29), last
    if (last - first).days > 366:
        problems.errors.append("from: a period of at most 366 days")
        first = last - timedelta(days=29)
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return Period(start, end), first, last


def _chart(kind: str, labels: list[str], datasets: list[dict[str, Any]], **options: Any) -> str:
    return json.dumps({"type": kind, "labels": labels, "datasets": datasets, **options},
                      default=str)


# --- sign-in ---------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a dashboard path: never an open redirect to another site."""
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return "/dashboard"


def _login_page(request: Request, settings: Any, next_: str, error: str | None,
                status: int = 200) -> Response:
    token, fresh = session.form_token(settings, request.scope)
    response = templates.TemplateResponse(request, "login.html", status_code=status, context={
        "next": _safe_next(next_), "error": error, "form_token": token})
    if fresh:
        session.set_form_token(settings, response, token)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.get("/login")
async def login_form(request: Request, services: ServicesDep,
                     next: str | None = None) -> Response:
    return _login_page(request, services.settings, next or "/dashboard", None)


@router.post("/login")
async def login(request: Request, services: ServicesDep,
                api_key: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=2000)] = "/dashboard",
                form_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    if not session.form_token_valid(services.settings, request.scope, form_token):
        return _login_page(request, services.settings, next,
                           "The sign-in form expired: try again.", 403)
    caller = await keys.authenticate(services.engine, services.settings, api_key.strip()) \
        if api_key.strip() else None
    error, status = None, 200
    if caller is None:
        error, status = "That key is not valid.", 401
    elif caller.role not in (Role.OPS, Role.ADMIN):
        error, status = (f"A {caller.role.value} key cannot open the dashboard: "
                         "sign in with an ops or admin key."), 403
    if error is not None:
        return _login_page(request, services.settings, next, error, status)
    assert caller is not None and caller.key_id is not None
    response: Response = RedirectResponse(_safe_next(next), status_code=303)
    await session.start(services.engine, services.settings, response, caller.key_id)
    return response


@router.post("/logout")
async def logout(request: Request, services: ServicesDep,
                 csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Ends the session server-side (a copied cookie stops working too), when the form
    came from one of its pages; another site cannot sign anyone out."""
    found = await session.find(services.engine, services.settings, request.scope)
    if found is not None and not session.csrf_valid(found, csrf):
        return HTMLResponse("The sign-out form was stale: reload the page and try again.",
                            status_code=403, headers=SECURITY_HEADERS)
    response = RedirectResponse("/dashboard/login", status_code=303)
    await session.end(services.engine, response, found)
    return response


# --- overview --------------------------------------------------------------------------------


@router.get("")
async def overview(request: Request, services: ServicesDep) -> HTMLResponse:
    problems = Problems(request)
    period, first, last = _period(problems)
    now = datetime.now(UTC)
    figures = (await kpis.kpis(services.engine, period, Scope(), now))["kpis"]
    created = await kpis.series(services.engine, "backorders_created", "day", period, Scope())
    fulfilled = await kpis.series(services.engine, "backorders_fulfilled", "day", period, Scope())
    alert = await kpis.series(services.engine, "time_to_alert_seconds", "day", period, Scope())
    labels = [p["start"] for p in created["points"]]
    flow = _chart("bar", labels, [
        {"label": "Backordered units", "data": [p["value"] for p in created["points"]]},
        {"label": "Backordered units shipped", "data": [p["value"] for p in fulfilled["points"]]}],
        y="units")
    ageing = figures["ageing"]
    ageing_chart = _chart("bar", [f"{b['bucket']} days" for b in ageing["buckets"]], [
        {"label": "Waiting units", "data": [b["units"] for b in ageing["buckets"]]}], y="units")
    alert_chart = _chart("line", [p["start"] for p in alert["points"]], [
        {"label": "Time to alert p95 (s)", "data": [p["p95"] for p in alert["points"]]},
        {"label": "Target (s)", "data": [KPIS["time_to_alert_seconds"].target] * len(labels),
         "dashed": True}], y="seconds")
    ranges = [(f"{n} days", {"from": (last - timedelta(days=n - 1)).isoformat(),
                             "to": last.isoformat()}) for n in (7, 30, 90)]
    return render(request, "overview.html", "overview", kpis=KPIS, figures=figures,
                  first=first, last=last, problems=problems.errors, flow=flow,
                  ageing=ageing, ageing_chart=ageing_chart, alert_chart=alert_chart,
                  ranges=[(name, urlencode(q)) for name, q in ranges])


# --- backorders ------------------------------------------------------------------------------


def _board_query(request: Request) -> tuple[BoardFilter, Sort, int, list[str]]:
    p = Problems(request)
    no_supply = p.choice("no_supply", ["true", "false"])
    f = BoardFilter(
        sku=p.text("sku", pattern=SKU_PATTERN), order_number=p.text("order_number"),
        customer_id=p.text("customer_id"), channel=p.text("channel", pattern=CHANNEL_PATTERN),
        tier=p.choice("tier", [t.value for t in Tier]),
        status=p.choice("status", [s.value for s in LineStatus]),
        min_age_days=p.whole("min_age_days"), max_age_days=p.whole("max_age_days"),
        no_supply=None if no_supply is None else no_supply == "true",
        view=View(p.choice("view", [v.value for v in View]) or View.ALL))
    sort = Sort(p.choice("sort", [s.value for s in Sort]) or Sort.QUEUE)
    page = p.whole("page", low=1, high=1_000_000) or 1
    return f, sort, page, p.errors


def _query(f: BoardFilter, sort: Sort, **extra: Any) -> str:
    values = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in f.active().items()}
    if sort is not Sort.QUEUE:
        values["sort"] = sort.value
    values.update({k: str(v) for k, v in extra.items() if v is not None})
    return urlencode(values)


@router.get("/backorders")
async def backorders_page(request: Request, services: ServicesDep) -> HTMLResponse:
    f, sort, page, errors = _board_query(request)
    result = await board.backorder_board(
        services.engine, f, sort=sort, page=page, per_page=PER_PAGE,
        sourcing_after_days=services.settings.dashboard_sourcing_after_days)
    return render(request, "backorders.html", "backorders", f=f, sort=sort, result=result,
                  problems=errors, query=lambda **kw: _query(f, sort, **kw),
                  sort_link=lambda key: "?" + _query(f, Sort(key)),
                  page_link=lambda n: "?" + _query(f, sort, page=n),
                  sorts=list(Sort), views=list(View), tiers=[t.value for t in Tier],
                  statuses=[s.value for s in LineStatus],
                  sourcing_days=services.settings.dashboard_sourcing_after_days)


CSV_COLUMNS = ("line_id", "order_number", "channel", "customer_id", "customer_tier", "sku",
               "quantity", "backordered_quantity", "in_progress_quantity", "shipped_quantity",
               "status", "queue_position", "units_ahead", "expected_date", "no_supply",
               "backordered_at", "age_days")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text a channel sent that starts like a
    formula (=, +, -, @, tab, return) is prefixed with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.get("/backorders.csv")
async def backorders_csv(request: Request, services: ServicesDep) -> Response:
    f, sort, _, errors = _board_query(request)
    if errors:
        return Response("; ".join(errors), status_code=422, media_type="text/plain")
    sourcing = services.settings.dashboard_sourcing_after_days

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        page = 1
        while True:
            chunk = await board.backorder_board(services.engine, f, sort=sort, page=page,
                                                per_page=1000, sourcing_after_days=sourcing)
            for item in chunk.items:
                data = item.model_dump()
                data["age_days"] = round(item.age_seconds / 86400, 2)
                writer.writerow([_cell(data.get(c)) for c in CSV_COLUMNS])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if page >= chunk.pages or not chunk.items:
                return
            page += 1

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="backorders-{stamp}.csv"',
        "Cache-Control": "no-store"})


# --- products --------------------------------------------------------------------------------


@router.get("/products")
async def products_page(request: Request, services: ServicesDep) -> HTMLResponse:
    p = Problems(request)
    sort = p.choice("sort", list(board.PRODUCT_SORTS)) or "units"
    page = p.whole("page", low=1, high=1_000_000) or 1
    items, total = await board.product_summaries(services.engine, sort=sort, page=page,
                                                 per_page=PER_PAGE)
    return render(request, "products.html", "products", items=items, total=total, sort=sort,
                  page=page, pages=max(1, -(-total // PER_PAGE)), problems=p.errors)


@router.get("/products/{sku}")
async def product_page(request: Request, services: ServicesDep,
                       sku: Annotated[str, PathParam(pattern=SKU_PATTERN)]) -> HTMLResponse:
    p = Problems(request)
    page = p.whole("page", low=1, high=1_000_000) or 1
    summary, _ = await board.product_summaries(services.engine, sku=sku)
    queue = await board.backorder_board(services.engine, BoardFilter(sku=sku), sort=Sort.QUEUE,
                                        page=page, per_page=PER_PAGE)
    return render(request, "product.html", "products", sku=sku,
                  summary=summary[0] if summary else None, queue=queue, problems=p.errors)


# --- one line --------------------------------------------------------------------------------


@router.get("/lines/{line_id}")
async def line_page(request: Request, services: ServicesDep, line_id: uuid.UUID) -> HTMLResponse:
    line = await views.get_backorder(services.engine, line_id)
    about_order = await notifications.list_notifications(
        services.engine, NotificationQuery(order_id=line.order_id, limit=1000))
    messages = [m for m in about_order.items if m.line_id == line_id]
    settings = services.settings
    workflow_url = (f"{settings.temporal_ui}/namespaces/{settings.temporal_namespace}"
                    f"/workflows/{line.workflow_id}")
    return render(request, "line.html", "backorders", line=line, messages=messages,
                  workflow_url=workflow_url)


# --- suppliers -------------------------------------------------------------------------------


@router.get("/suppliers")
async def suppliers_page(request: Request, services: ServicesDep) -> HTMLResponse:
    ranking = await suppliers.list_suppliers(services.engine)
    deliveries = await board.supplier_deliveries(services.engine)
    charts = {}
    for supplier_id, rows in deliveries.items():
        dates = sorted({r["received"] for r in rows})
        datasets = []
        for sku in sorted({r["sku"] for r in rows}):
            by_date = {r["received"]: r["delay_days"] for r in rows if r["sku"] == sku}
            datasets.append({"label": sku, "data": [by_date.get(d) for d in dates]})
        charts[supplier_id] = _chart("line", [d.isoformat() for d in dates], datasets,
                                     y="days late", points=True)
    return render(request, "suppliers.html", "suppliers", ranking=ranking, charts=charts,
                  deliveries=deliveries)


# --- forecasts and replenishment -----------------------------------------------------------

REPLENISHMENT_MAX = 1000
"""Suggestions a page lists at most (the API's own cap), PER_PAGE at a time."""


@router.get("/replenishment")
async def replenishment_page(request: Request, services: ServicesDep) -> HTMLResponse:
    """What to order, in the order `GET /replenishment` ranks it. A horizon beyond the
    forecast's own changes nothing, so the form stops there."""
    settings = services.settings
    p = Problems(request)
    horizon = p.whole("horizon_weeks", low=1, high=settings.forecast_horizon_weeks)
    supplier_id = p.text("supplier_id")
    page = p.whole("page", low=1, high=1_000_000) or 1
    known = sorted(await suppliers.list_suppliers(services.engine),
                   key=lambda s: ((s.name or s.id).lower(), s.id))
    if supplier_id is not None and supplier_id not in {s.id for s in known}:
        p.errors.append(f"supplier_id: {supplier_id[:40]!r} is not a known supplier")
        supplier_id = None
    items = await forecasts.replenishment(services.engine, settings, horizon_weeks=horizon,
                                          supplier_id=supplier_id, limit=REPLENISHMENT_MAX)
    query = {k: v for k, v in (("horizon_weeks", horizon), ("supplier_id", supplier_id))
             if v is not None}
    first = (page - 1) * PER_PAGE
    return render(request, "replenishment.html", "replenishment", items=items[first:first + PER_PAGE],
                  first=first, total=len(items), capped=len(items) >= REPLENISHMENT_MAX,
                  page=page, pages=max(1, -(-len(items) // PER_PAGE)), horizon=horizon,
                  forecast_weeks=settings.forecast_horizon_weeks, supplier_id=supplier_id,
                  suppliers=known, names={s.id: s.name for s in known}, problems=p.errors,
                  page_link=lambda n: "?" + urlencode({**query, "page": n}))


def _demand_chart(f: ForecastOut) -> str:
    """Weekly demand as ordered, then the forecast with its 80% and 95% intervals drawn
    as bands (each the area between an `edge` and the `band` after it)."""
    past, ahead = len(f.weekly_history), len(f.forecast)
    labels = [w.week_start.isoformat() for w in f.weekly_history] + \
        [w.week_start.isoformat() for w in f.forecast]

    def future(key: str) -> list[float | None]:
        return [None] * past + [round(getattr(w, key), 1) for w in f.forecast]

    return _chart("line", labels, [
        {"label": "Ordered", "data": [round(w.ordered, 1) for w in f.weekly_history] + [None] * ahead},
        {"label": "Forecast", "data": future("mean")},
        {"label": "95% upper", "data": future("hi95"), "edge": True, "color": "#8a94a6"},
        {"label": "95% interval", "tip": "95% lower", "data": future("lo95"), "band": True,
         "color": "#8a94a6"},
        {"label": "80% upper", "data": future("hi80"), "edge": True, "color": "#157347"},
        {"label": "80% interval", "tip": "80% lower", "data": future("lo80"), "band": True,
         "color": "#157347"}], y="units per week")


def _stock_chart(f: ForecastOut) -> str:
    """Available stock projected to each week's end, what arrives and what is asked for,
    the reorder point, and a marker on the week the stock runs out."""
    labels = [w.week_start.isoformat() for w in f.projection]
    datasets: list[dict[str, Any]] = [
        {"label": "Projected available (week's end)", "data": [round(w.projected, 1) for w in f.projection]},
        {"label": "Forecast demand", "data": [round(w.demand, 1) for w in f.projection], "type": "bar"},
        {"label": "Arriving", "data": [w.arriving for w in f.projection], "type": "bar",
         "color": "#0b7285"},
        {"label": "Reorder point", "data": [f.replenishment.reorder_point] * len(labels),
         "dashed": True}]
    if f.stockout_date is not None:
        week = (f.stockout_date - timedelta(days=f.stockout_date.weekday())).isoformat()
        datasets.append({"label": f"Stockout {fmt.day(f.stockout_date)}", "marker": True,
                         "data": [0 if label == week else None for label in labels]})
    return _chart("line", labels, datasets, y="units")


@router.get("/forecast/{sku}")
async def forecast_page(request: Request, services: ServicesDep,
                        sku: Annotated[str, PathParam(pattern=SKU_PATTERN)]) -> HTMLResponse:
    """One SKU's demand, forecast, projected stock and suggestion, as `GET /forecast/{sku}`
    answers them (recomputed when its history changed); an unknown SKU is its 404."""
    f = await forecasts.forecast(services.engine, sku, services.settings)
    projected = {w.week_start: w for w in f.projection}
    return render(request, "forecast.html", "replenishment", f=f, sku=sku,
                  demand_chart=_demand_chart(f), stock_chart=_stock_chart(f),
                  weeks=[(w, projected.get(w.week_start)) for w in f.forecast],
                  min_weeks=forecasts.history_needed(services.settings))


# --- notifications ---------------------------------------------------------------------------


@router.get("/notifications")
async def notifications_page(request: Request, services: ServicesDep) -> HTMLResponse:
    problems = Problems(request)
    period, first, last = _period(problems)
    health = await board.notification_health(services.engine, period.start, period.end)
    delivery, opt_out = await kpis.some(services.engine, period, Scope(), datetime.now(UTC),
                                        ["notification_delivery_rate", "opt_out_rate"])
    return render(request, "notifications.html", "notifications", health=health,
                  delivery=delivery, opt_out=opt_out,
                  kpis=KPIS, first=first, last=last, problems=problems.errors)


# --- operations ------------------------------------------------------------------------------


@router.get("/operations")
async def operations_page(request: Request, services: ServicesDep) -> HTMLResponse:
    p = Problems(request)
    page = p.whole("page", low=1, high=1_000_000) or 1
    dead, total = await outbox_ops.list_messages(services.engine, state="dead", limit=PER_PAGE,
                                                 offset=(page - 1) * PER_PAGE)
    pending, backlog = await outbox_ops.list_messages(services.engine, state="pending", limit=1)
    parked = await intake.list_intakes(services.engine, state="dead", limit=PER_PAGE)
    return render(request, "operations.html", "operations", dead=dead, total=total, page=page,
                  intakes=parked.items, intakes_total=parked.total,
                  reasons=sorted({i.reason for i in parked.items if i.reason}),
                  intake_done=_intake_notice(p),
                  pages=max(1, -(-total // PER_PAGE)), backlog=backlog,
                  oldest_pending=pending[0]["created_at"] if pending else None,
                  replayed=p.whole("replayed", low=1, high=2**62), problems=p.errors)


@router.post("/operations/outbox/{message_id}/replay")
async def replay(request: Request, services: ServicesDep,
                 message_id: Annotated[int, PathParam(ge=1, le=2**62)],
                 csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if not session.csrf_valid(request.scope.get("state", {}).get("session"), csrf):
        return _form_refused(request)
    try:
        await outbox_ops.replay(services.engine, message_id, services.settings,
                                audit=get_audit(request))
    except DomainError as exc:  # the gate audits the refusal with this status
        return render(request, "message.html", "operations", status_code=exc.status_code,
                      title="Not replayed", text=exc.message)
    await services.hand_off([message_id])
    return RedirectResponse(f"/dashboard/operations?replayed={message_id}", status_code=303)


def _intake_notice(p: Problems) -> str | None:
    """What the last replay did, rebuilt from checked values (never text from the URL)."""
    one = p.whole("replayed_intake", low=1, high=2**62)
    if one is not None:
        return f"Intake {one}: {p.choice('state', ['accepted', 'rejected', 'dead']) or 'replayed'}."
    reason = p.text("replayed_reason", pattern=r"^[a-z_]{1,64}$")
    if reason is None:
        return None
    counts = {k: p.whole(k, high=10**9) or 0 for k in ("accepted", "rejected", "dead")}
    return (f"{sum(counts.values())} {reason} intake(s) replayed: {counts['accepted']} "
            f"accepted, {counts['rejected']} rejected, {counts['dead']} still dead.")


def _form_refused(request: Request) -> HTMLResponse:
    return render(request, "message.html", "operations", status_code=403,
                  title="Form expired", text="The form was stale or came from another "
                  "page: reload the Operations page and try again.")


@router.post("/operations/intake/{intake_id}/replay")
async def replay_intake(request: Request, services: ServicesDep,
                        intake_id: Annotated[int, PathParam(ge=1, le=2**62)],
                        csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if not session.csrf_valid(request.scope.get("state", {}).get("session"), csrf):
        return _form_refused(request)
    try:
        outcome = await intake.replay(services.engine, services.settings, intake_id,
                                      path=request.url.path, hand_off=services.hand_off,
                                      audit=get_audit(request))
        state = outcome.state
    except intake.Rejected:
        state = "rejected"
    except DomainError as exc:
        return render(request, "message.html", "operations", status_code=exc.status_code,
                      title="Not replayed", text=exc.message)
    return RedirectResponse("/dashboard/operations?" + urlencode(
        {"replayed_intake": intake_id, "state": state}), status_code=303)


@router.post("/operations/intake/replay")
async def replay_intakes(request: Request, services: ServicesDep,
                         reason: Annotated[str, Form(pattern=r"^[a-z_]{1,64}$")],
                         csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    if not session.csrf_valid(request.scope.get("state", {}).get("session"), csrf):
        return _form_refused(request)
    counts = await intake.replay_by_reason(services.engine, services.settings, reason,
                                           channel=None, limit=500, audit=get_audit(request),
                                           hand_off=services.hand_off)
    return RedirectResponse("/dashboard/operations?" + urlencode({
        "replayed_reason": reason, **{k: counts[k] for k in ("accepted", "rejected", "dead")}}),
        status_code=303)
