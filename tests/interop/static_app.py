"""A tiny static HTTP server on 127.0.0.1 for the browser SMART app (``app/launch.html``, ``app/index.html``).

It serves exactly four paths: the two pages, the unmodified npm ``fhirclient`` browser bundle
(``node_modules/fhirclient/build/fhir-client.js``) and ``config.js`` — ``window.APP_CONFIG`` with the values a
test sets (client id, CarePlan id), so the pages themselves stay static. Anything else is a 404. The app runs on
an origin of its own (another port), as a real SMART app does, so the FHIR server's CORS answers are exercised.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APP_DIR = HERE / "app"
BUNDLE = HERE / "node_modules" / "fhirclient" / "build" / "fhir-client.js"

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class StaticApp:
    """Serves the SMART test app on ``http://127.0.0.1:<port>/`` from a daemon thread."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/config.js":
                    body = f"window.APP_CONFIG = {json.dumps(app.config)};\n".encode()
                    return self._send(200, _TYPES[".js"], body)
                files = {"/launch.html": APP_DIR / "launch.html", "/index.html": APP_DIR / "index.html",
                         "/fhir-client.js": BUNDLE}
                file = files.get(path)
                if file is None or not file.is_file():
                    return self._send(404, "text/plain", b"not found")
                return self._send(200, _TYPES[file.suffix], file.read_bytes())

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
                pass  # quiet: the URLs carry OAuth codes

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> StaticApp:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
