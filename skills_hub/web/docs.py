"""The API reference page: /openapi.json rendered by a vendored Swagger UI (`/docs`).

Swagger UI comes from the npm package swagger-ui-dist (Apache-2.0), copied byte for byte
into static/ with its version in the file names: the bundle (its header points to the
third-party notices, shipped as swagger-ui-bundle-<version>.js.LICENSE.txt), the stylesheet,
and the package's LICENSE and NOTICE. To upgrade: `npm pack swagger-ui-dist@<version>`, copy
swagger-ui-bundle.js, swagger-ui-bundle.js.LICENSE.txt, swagger-ui.css, LICENSE and NOTICE
under the new names, bump SWAGGER_UI, delete the old files.

It runs under the site's Content-Security-Policy unchanged (script-src 'self', style-src
'self', no eval), so /docs sets no CSP of its own: static/api-docs.js boots it (no inline
script), and its inline styles are set through the DOM (CSSOM), which style-src does not
govern. static/api-docs.css fits it into the site's layout; api-docs.js also turns on Swagger
UI's dark styles when the reader prefers a dark scheme. The alternatives need more: Redoc's
standalone bundle (styled-components) and Scalar inject <style> elements, which would need
style-src 'unsafe-inline', and Scalar loads fonts from a CDN by default.
tests/test_api_docs.py checks the page in Chromium: no CSP violation, no request leaving the
origin.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

SWAGGER_UI = "5.35.0"
SWAGGER_UI_JS = f"swagger-ui-bundle-{SWAGGER_UI}.js"
SWAGGER_UI_CSS = f"swagger-ui-{SWAGGER_UI}.css"
BOOT_JS = "api-docs.js"
DOCS_CSS = "api-docs.css"  # the viewer fitted into the site's layout


def routes(templates: Jinja2Templates) -> list[Route]:
    def docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "api_docs.html", {
            "swagger_ui_js": SWAGGER_UI_JS, "swagger_ui_css": SWAGGER_UI_CSS,
            "boot_js": BOOT_JS, "docs_css": DOCS_CSS,
            "swagger_ui_version": SWAGGER_UI})

    def api(request: Request) -> Response:
        return RedirectResponse("/docs", status_code=308)

    # Before the pages, whose /{namespace} would match them (both are reserved namespaces).
    return [
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Route("/api", api, methods=["GET"], include_in_schema=False),
    ]
