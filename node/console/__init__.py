"""The regulator's web console: static HTML, CSS and JavaScript in `static/`, served read-only at
`/console/` on the RPC address of every node (validator or observer) unless `[rpc] console = false`.

The page speaks only the public JSON-RPC (HTTP POST "/") and WebSocket ("/ws") API, like any other
client; the node adds nothing for it beyond these files (docs/CONSOLE.md).

Serving is safe by construction: the files are read once, when the console is mounted, into a
table keyed by their relative path; a request is answered from that table or with 404, so no
request path ever reaches the file system (no traversal, no symlink escape, no directory listing).
Every answer carries a Content-Security-Policy that allows this origin only: no external script,
style, image, font, frame or connection, and no inline script.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Final

from aiohttp import web

if TYPE_CHECKING:
    from node.rpc import RpcServer

#: Where the console lives on the RPC address.
PREFIX: Final[str] = "/console/"

CONTENT_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
"""Only files of these kinds are served; anything else in static/ is ignored."""

#: 'self' covers ws:// and wss:// of the same host and port (CSP level 3), so the WebSocket
#: subscription needs no host named here. No 'unsafe-inline' anywhere: every script and style is
#: a file (so style="" attributes are refused too).
CONTENT_SECURITY_POLICY: Final[str] = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # The files change with the node's version: revalidate rather than serve a stale console.
    "Cache-Control": "no-cache",
}

FILES_MAX: Final[int] = 200
FILE_BYTES_MAX: Final[int] = 4 << 20


def load_files(root: Traversable | None = None) -> dict[str, tuple[bytes, str]]:
    """Relative path ("index.html", "js/app.js") -> (content, content type), read once."""
    root = root if root is not None else resources.files(__name__) / "static"
    files: dict[str, tuple[bytes, str]] = {}

    def walk(directory: Traversable, prefix: str) -> None:
        for entry in sorted(directory.iterdir(), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rpartition(".")[2] if "." in entry.name else ""
            if suffix not in CONTENT_TYPES:
                continue
            content = entry.read_bytes()
            if len(content) > FILE_BYTES_MAX or len(files) >= FILES_MAX:
                raise ValueError(f"console file {prefix}{entry.name} over the limits")
            files[prefix + entry.name] = (content, CONTENT_TYPES[suffix])

    walk(root, "")
    if "index.html" not in files:
        raise FileNotFoundError("the console's static/index.html is missing from the package")
    return files


def mount(server: RpcServer, files: dict[str, tuple[bytes, str]] | None = None) -> None:
    """Serve the console on `server` (before it starts)."""
    table = files if files is not None else load_files()

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(PREFIX, headers=SECURITY_HEADERS)

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("path", "") or "index.html"
        found = table.get(name)
        if found is None:
            return web.Response(status=404, text="not found\n", headers=SECURITY_HEADERS)
        content, content_type = found
        return web.Response(body=content, headers={**SECURITY_HEADERS, "Content-Type": content_type})

    server.add_page(PREFIX.rstrip("/"), redirect)
    server.add_page(PREFIX + "{path:.*}", serve)
