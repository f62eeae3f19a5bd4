"""A webhook receiver on loopback for tests and benchmarks: records every request, and can be
told to be down (answer 500), to hang (never answer) or to be up again."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.mode = "up"  # "up" (204), "down" (500), "hang" (no answer until stopped)
        self.received: list[tuple[dict[str, str], bytes]] = []  # accepted (2xx) requests, in order
        self.attempts = 0
        self.lock = threading.Lock()
        self._release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.attempts += 1
                    mode = outer.mode
                if mode == "hang":
                    outer._release.wait(30)
                    return
                if mode == "down":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with outer.lock:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?src=collab"

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
