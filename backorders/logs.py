"""Logs that say what happened and to what: text for a terminal, or one JSON object a
line (`LOG_FORMAT=json`, through python-json-logger) for a log pipeline.

Every record carries the correlation ids in force where it was written: the request id
(`X-Request-Id`, in and out of the API), and the order, line, workflow and receipt ids
that code sets with `bind()`; activities get their workflow's ids from the worker's
interceptor and the order, receipt and request ids from their input (an outbox row keeps
its writer's request id, and the line workflow passes it on to the activities that
follow from that message), so a line's activities log under the same ids the API did."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from backorders.contracts.line import workflow_id as line_workflow_id

LINE_PREFIX = line_workflow_id("")

CORRELATION_IDS = ("request_id", "order_id", "line_id", "workflow_id", "receipt_id",
                   "intake_id")
"""The ids a record may carry, in the order the text format prints them."""

REQUEST_ID_KEY = "x-request-id"
"""The request id's HTTP header (in and out of the API), and its key beside the W3C trace
headers an outbox row keeps of its writer: the relay delivers under it, and the line's
activities log under it."""

_context: ContextVar[dict[str, str]] = ContextVar("backorders_log_context", default={})  # noqa: B039


def current() -> dict[str, str]:
    return _context.get()


def _with(ids: dict[str, Any]) -> dict[str, str]:
    """The ids in force with `ids` added (those that are None left out)."""
    return {**_context.get(), **{k: str(v) for k, v in ids.items() if v is not None}}


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Add ids to every record written inside the block (this task and what it awaits)."""
    token = _context.set(_with(ids))
    try:
        yield
    finally:
        _context.reset(token)


def set_ids(**ids: Any) -> None:
    """Add ids for the rest of the current task (a request handler that learns the
    order id half way through)."""
    _context.set(_with(ids))


class _WithIds(logging.Filter):
    """Put the bound ids on each record (as attributes: JSON fields, text suffix)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _context.get()
        for key in CORRELATION_IDS:
            if key in ids and not hasattr(record, key):
                setattr(record, key, ids[key])
        record.ids = " ".join(f"{k}={getattr(record, k)}" for k in CORRELATION_IDS
                              if hasattr(record, k))
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = getattr(record, "ids", "")
        return f"{text} [{ids}]" if ids else text


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        # `time`: ISO 8601 in UTC, from the record's own creation time.
        return JsonFormatter(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*_RESERVED, "ids", "color_message"], timestamp="time",
            json_default=str)
    return _TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")


_RESERVED = ("args", "created", "exc_info", "exc_text", "filename", "funcName", "levelno",
             "lineno", "module", "msecs", "msg", "pathname", "process", "processName",
             "relativeCreated", "stack_info", "thread", "threadName", "taskName")


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_WithIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our messages already name the line and order; the SDK's appended info dict is noise
    # in a terminal (it stays available to structured handlers through `extra`).
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn's own loggers write through ours, so they are JSON too when asked.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class ActivityIds(Interceptor):
    """Worker interceptor: an activity's records carry its workflow's ids (and the line's,
    for a line workflow), and the order, receipt and request its input names, as the
    API's records of the same line do."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivity(next)


_INPUT_IDS = ("order_id", "receipt_id", "request_id")
"""Ids an activity's input may carry (`StepInput`, `LineNotice`): bound when present."""


class _BindActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id
        line_id = workflow_id[len(LINE_PREFIX):] if workflow_id and workflow_id.startswith(
            LINE_PREFIX) else None
        first = input.args[0] if input.args else None
        carried = {key: getattr(first, key, None) for key in _INPUT_IDS}
        with bind(workflow_id=workflow_id, line_id=line_id, **carried):
            return await super().execute_activity(input)
