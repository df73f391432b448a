"""A real HTTP server on 127.0.0.1 (an ephemeral port) in a background thread, for tests of code that talks to a
service: subclasses give the request handler; ``with Server(...) as s`` serves until the block ends."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    url_path = ""  # appended to http://127.0.0.1:<port>

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def _start_server(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.url_path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
