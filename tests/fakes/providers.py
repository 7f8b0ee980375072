"""A recording stand-in for SendGrid, Twilio and the push webhook on 127.0.0.1.

A real HTTP server (stdlib `ThreadingHTTPServer` in a background thread) rather than a
mocked transport, so the blocking SendGrid client (urllib) and httpx both go over a
socket exactly as they would in production:

    with ProviderServer() as server:
        server.fail_next("/v3/mail/send", status=429, headers={"Retry-After": "1"}, times=2)
        ...  # point the adapters at server.url
        assert server.requests_to("/v3/mail/send")[-1].json["subject"] == "..."

Answers like the providers: SendGrid `POST /v3/mail/send` → 202 with `X-Message-Id`;
Twilio `POST /2010-04-01/Accounts/{sid}/Messages.json` → 201 `{"sid": "SM..."}` (the same
sid again for a repeated `I-Twilio-Idempotency-Token`); `POST /push` → 200. Both
providers answer 401 without an `Authorization` header; anything else is a 404."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

SENDGRID_PATH = "/v3/mail/send"
PUSH_PATH = "/push"
TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")


def twilio_path(account_sid: str) -> str:
    return f"/2010-04-01/Accounts/{account_sid}/Messages.json"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it. `headers` has lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    """The parsed body when it was sent as JSON."""
    form: dict[str, str] = field(default_factory=dict)
    """The parsed body when it was form-encoded (last value wins for repeated fields)."""
    answered: int = 0
    """The status the server answered with."""


@dataclass(frozen=True)
class _Failure:
    status: int
    headers: Mapping[str, str]
    body: bytes
    delay: float


class ProviderServer:
    """The server; a context manager that starts it on entry and stops it on exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._twilio_sids: dict[str, str] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> ProviderServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"provider": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)  # port 0: a free one
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.01},
                                        name="provider-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the provider server is not running")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: `http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    # --- what tests use ------------------------------------------------------------------

    def fail_next(self, path: str, *, status: int = 500, headers: Mapping[str, str] | None = None,
                  body: Any = None, times: int = 1, delay: float = 0.0) -> None:
        """Answer the next `times` requests to `path` with `status` (and `headers`), after
        `delay` seconds (longer than a client's timeout simulates a hung provider). `body`
        is sent as JSON unless bytes/str; by default a provider-like error body."""
        if body is None:
            body = {"errors": [{"message": f"simulated failure {status}"}], "status": status}
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        raw = body.encode() if isinstance(body, str) else body
        failure = _Failure(status, dict(headers or {}), raw, delay)
        with self._lock:
            self._failures.setdefault(path, deque()).extend([failure] * times)

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        """Forget recorded requests and queued failures."""
        with self._lock:
            self._requests.clear()
            self._failures.clear()

    # --- called by the handler threads ---------------------------------------------------

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get(path)
            return queue.popleft() if queue else None

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    def _twilio_sid(self, token: str | None) -> str:
        if token is None:
            return "SM" + uuid.uuid4().hex
        with self._lock:
            return self._twilio_sids.setdefault(token, "SM" + uuid.uuid4().hex)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a delayed answer or an idle keep-alive never blocks stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timed out) before the answer: expected, not worth a trace.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


class _Handler(BaseHTTPRequestHandler):
    provider: ProviderServer
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx and the providers use

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        parsed_json: Any = None
        form: dict[str, str] = {}
        if content_type == "application/json" and body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        elif content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

        status, reply_headers, reply = self._answer(parts.path, headers)
        self.provider._record(Recorded(
            method=self.command, path=parts.path, query=dict(parse_qsl(parts.query)),
            headers=headers, body=body, json=parsed_json, form=form, answered=status))
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        if reply and not any(k.lower() == "content-type" for k in reply_headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        failure = self.provider._take_failure(path)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            return failure.status, failure.headers, failure.body
        twilio = TWILIO_PATH.match(path)
        if self.command != "POST" or not (path in (SENDGRID_PATH, PUSH_PATH) or twilio):
            return 404, {}, _json_body({"error": "not found", "path": path})
        if path != PUSH_PATH and "authorization" not in headers:
            return 401, {}, _json_body({"errors": [{"message": "authorization required"}]})
        if path == SENDGRID_PATH:
            return 202, {"X-Message-Id": uuid.uuid4().hex[:22]}, b""
        if twilio:
            sid = self.provider._twilio_sid(headers.get("i-twilio-idempotency-token"))
            return 201, {}, _json_body({"sid": sid, "account_sid": twilio["sid"],
                                        "status": "queued"})
        return 200, {}, _json_body({"ok": True})


@pytest.fixture
def provider_server() -> Iterator[ProviderServer]:
    """A running provider server for one test."""
    with ProviderServer() as server:
        yield server
