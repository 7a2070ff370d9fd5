"""``/docs``: Swagger UI over ``/openapi.json``. Its script and stylesheet come from jsDelivr's copy of the npm
package ``swagger-ui-dist``, pinned to one release and checked by the browser against the hashes below (Subresource
Integrity): the page is served from the dashboard's origin, where a script calls ``/api/v1`` as the logged-in
user, so what it runs is exactly that release's file or nothing (FastAPI's own page loads whatever ``@5`` is
published next, unchecked). Its one inline script is allowed by its hash (CSP), and the page cannot be framed.

To move to another release: ``npm pack swagger-ui-dist@X.Y.Z``, then ``openssl dgst -sha384 -binary`` of
``package/swagger-ui-bundle.js`` and ``package/swagger-ui.css``, base64-encoded, as ``BUNDLE_SRI`` and ``CSS_SRI``.
"""

from __future__ import annotations

import base64
import hashlib
import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

SWAGGER_UI = "5.36.0"
_DIST = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI}"
BUNDLE_SRI = "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
CSS_SRI = "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"

# The same text whatever the page's address (the spec's URL is read from the page), so that one hash allows it.
_START = (
    "const box = document.getElementById('swagger-ui');\n"
    "window.ui = SwaggerUIBundle({url: box.dataset.spec, dom_id: '#swagger-ui', deepLinking: true,\n"
    "  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], layout: 'BaseLayout'});\n"
)
_START_HASH = base64.b64encode(hashlib.sha256(_START.encode()).digest()).decode()
# Swagger UI sets style attributes (hence 'unsafe-inline' for styles only), shows data: images, and fetches the
# spec and the calls a reader tries from this origin.
CSP = (
    f"default-src 'none'; script-src {_DIST}/ 'sha256-{_START_HASH}'; style-src {_DIST}/ 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}

router = APIRouter()


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    spec = html.escape(request.scope.get("root_path", "").rstrip("/") + "/openapi.json")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>ductape-jobs API</title>
<link rel="stylesheet" href="{_DIST}/swagger-ui.css" integrity="{CSS_SRI}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui" data-spec="{spec}"></div>
<script src="{_DIST}/swagger-ui-bundle.js" integrity="{BUNDLE_SRI}" crossorigin="anonymous"></script>
<script>{_START}</script>
</body>
</html>
"""
    return HTMLResponse(page, headers=HEADERS)
