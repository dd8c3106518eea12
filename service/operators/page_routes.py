"""The Review Recent Orders page: three static files, served with no token (the page signs in and
talks to the API with the operator's token)."""

from __future__ import annotations

from pathlib import Path

from faust import web

from service.app import app
from service.operators.request_checks import refusal

PAGE_DIR = Path(__file__).resolve().parent / "page"
PAGE_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def page_file(name: str) -> tuple[bytes, str] | None:
    path = (PAGE_DIR / name).resolve()
    if path.parent != PAGE_DIR or path.suffix not in PAGE_TYPES or not path.is_file():
        return None
    return path.read_bytes(), PAGE_TYPES[path.suffix]


# The page loads nothing from elsewhere, and the browser is told to refuse if it ever tried.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@app.page("/ops")
class PageRedirect(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.text("", status=308, headers={"Location": "/ops/"})


@app.page("/ops/")
class Page(web.View):
    """Review Recent Orders (static: the page talks to the API with the operator's token)."""

    async def get(self, request: web.Request) -> web.Response:
        found = page_file("index.html")
        assert found is not None
        return self.bytes(found[0], content_type=found[1], headers=dict(PAGE_HEADERS))


@app.page("/ops/{name}")
class PageAsset(web.View):
    async def get(self, request: web.Request, name: str) -> web.Response:
        found = page_file(name)
        if found is None:
            return refusal(self, 404, f"no page file {name!r}")
        return self.bytes(found[0], content_type=found[1], headers=dict(PAGE_HEADERS))
