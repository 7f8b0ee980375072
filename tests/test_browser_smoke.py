"""The vendored front-end libraries load and work in a real browser, offline: a page served
from loopback only, with htmx and Chart.js from api/dashboard/static/vendor/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tests.browser import collect_errors, serve

if TYPE_CHECKING:
    from playwright.async_api import Page

STATIC = Path(__file__).resolve().parent.parent / "api" / "dashboard" / "static"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>vendored assets</title>
  <script src="/static/vendor/htmx.min.js"></script>
  <script src="/static/vendor/chart.umd.min.js"></script>
</head>
<body>
  <div style="width: 600px; height: 300px"><canvas id="chart" width="600" height="300"></canvas></div>
  <script>
    window.chart = new Chart(document.getElementById("chart"), {
      type: "bar",
      data: {labels: ["waiting", "allocated", "dispatched"],
             datasets: [{label: "lines", data: [12, 7, 3]}]},
      options: {animation: false, responsive: false},
    });
  </script>
</body>
</html>
"""


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


def make_app() -> Starlette:
    return Starlette(routes=[
        Route("/", index),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ])


async def test_vendored_htmx_and_chartjs_work_offline(page: Page) -> None:
    errors = collect_errors(page)
    async with serve(make_app()) as base_url:
        response = await page.goto(f"{base_url}/", wait_until="load")
        assert response is not None and response.ok

        assert await page.evaluate("typeof window.htmx") == "object"
        assert (await page.evaluate("htmx.version")).startswith("2.")
        assert await page.evaluate("typeof window.Chart") == "function"
        assert (await page.evaluate("Chart.version")).startswith("4.")

        # The chart drew bars: its canvas has pixels that are not transparent.
        painted = await page.evaluate("""() => {
            const canvas = document.getElementById("chart");
            const ctx = canvas.getContext("2d");
            const {data} = ctx.getImageData(0, 0, canvas.width, canvas.height);
            let opaque = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
            return {opaque, width: canvas.width, height: canvas.height,
                    bars: window.chart.getDatasetMeta(0).data.length};
        }""")
        assert painted["bars"] == 3
        assert painted["width"] > 0 and painted["height"] > 0
        assert painted["opaque"] > 1000, painted
    assert errors == []
