"""Support for the browser tests: Debian's chromium driven by Playwright, offline.

Playwright never downloads a browser here: the `chromium` fixture (tests/conftest.py)
launches /usr/bin/chromium with FLAGS, and the `page` fixture blocks every request to a
host that is not loopback, so a page that would load something from a CDN fails its test.

    async def test_dashboard(page):
        async with serve(app) as base_url:
            errors = collect_errors(page)
            await page.goto(f"{base_url}/dashboard")
            assert errors == []
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import uvicorn

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Route, WebSocketRoute

CHROMIUM = "/usr/bin/chromium"

FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Schemes that never reach the network.
_LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-error", "devtools"}


def chromium_available() -> bool:
    return os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)


def is_loopback_url(url: str) -> bool:
    """True for a URL that stays on this machine: localhost, 127.0.0.0/8 or [::1]."""
    parts = urlsplit(url)
    if parts.scheme in _LOCAL_SCHEMES:
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OffsiteGuard:
    """Aborts every request (and WebSocket) of a context to a non-loopback host and
    records its URL in `blocked`."""

    def __init__(self) -> None:
        self.blocked: list[str] = []

    async def install(self, context: BrowserContext) -> None:
        await context.route("**/*", self._on_request)
        await context.route_web_socket("**/*", self._on_websocket)

    async def _on_request(self, route: Route) -> None:
        url = route.request.url
        if is_loopback_url(url):
            await route.fallback()
        else:
            self.blocked.append(url)
            await route.abort("blockedbyclient")

    async def _on_websocket(self, ws: WebSocketRoute) -> None:
        if is_loopback_url(ws.url):
            ws.connect_to_server()
        else:
            self.blocked.append(ws.url)
            # Never connected to a server: close the page's end.
            await ws.close(code=1008, reason="blocked by tests/browser.py")


def collect_errors(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of `page` from now on, as a live list."""
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console: {msg.text} ({msg.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest: a test's server must not swallow it.
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, *, lifespan: str = "auto") -> AsyncIterator[str]:
    """Serve an ASGI app under uvicorn on 127.0.0.1 (a free port), in this event loop, and
    yield its base URL ("http://127.0.0.1:PORT")."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raise what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(10):
                await task
        finally:
            sock.close()
