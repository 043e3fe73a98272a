"""/docs: Swagger UI served from our own package, with a CSP that allows only our scripts.

The page works without internet and runs no third-party script: every asset comes from
`gatehouse/server/http/swagger_ui/` (swagger-ui-dist, vendored with its licence by
`scripts/vendor-swagger-ui`; SOURCE.txt records version and checksums), and the page has
no inline script (the initializer is one more asset), so its Content-Security-Policy
allows scripts and styles from 'self' only and forbids framing. "Authorize" uses the
password flow against POST /oauth/token (declared by `deps.oauth2_scheme`).

Only the files named in `_ASSETS` are served; any other name under /docs/assets/ is a 404.
`DOCS_ENABLED=false` leaves this router out, assets included.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

router = APIRouter(prefix="/docs", include_in_schema=False)

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# Assets change only with a Gatehouse release; a day of caching, then revalidation by ETag.
_ASSET_CACHE = "public, max-age=86400"

_INITIALIZER = b"""\
// Starts Swagger UI on the Gatehouse docs page. A file of its own, not an inline script,
// so that the page's Content-Security-Policy can allow scripts from 'self' only.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
"""

_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gatehouse API</title>
<link rel="icon" type="image/png" href="{root}/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}/openapi.json"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/assets/swagger-initializer.js"></script>
</body>
</html>
"""

_JS = "text/javascript; charset=utf-8"
# name -> media type; the content is the vendored file of that name, or ours.
_ASSETS = {
    "swagger-ui-bundle.js": _JS,
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "swagger-initializer.js": _JS,
}


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    etag: str


@cache
def load_asset(name: str) -> Asset:
    """The asset's bytes (read from the installed package once per process) and its ETag."""
    if name == "swagger-initializer.js":
        content = _INITIALIZER
    else:
        content = resources.files("gatehouse.server.http").joinpath("swagger_ui", name).read_bytes()
    etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    return Asset(content=content, media_type=_ASSETS[name], etag=etag)


@router.get("")
async def swagger_ui(request: Request) -> Response:
    """The Swagger UI page."""
    root = html.escape(request.scope.get("root_path", "").rstrip("/"), quote=True)
    return Response(
        _PAGE.format(root=root),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DOCS_CSP},
    )


@router.get("/assets/{name}")
async def asset(name: str, request: Request) -> Response:
    """One of the page's files; 404 for any name that is not one of them."""
    if name not in _ASSETS:
        raise HTTPException(404)
    found = load_asset(name)
    headers = {"ETag": found.etag, "Cache-Control": _ASSET_CACHE}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.content, media_type=found.media_type, headers=headers)
