"""A stand-in for Slack's incoming webhook: answers every POST 200 "ok" and counts them;
`GET /count` returns the count. Its own process, so its CPU is counted apart from the seed's.

    python bench/seed_design/slack_sink.py PORT
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_count = 0
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global _count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with _lock:
            _count += 1
        self._answer(b"ok")

    def do_GET(self):
        self._answer(str(_count).encode())

    def _answer(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # no access log: it would be measured
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"slack sink listening on {server.server_port}", flush=True)
    server.serve_forever()
