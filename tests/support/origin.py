"""The origin of the shell tests (tests/container.sh, tests/dashboard.sh):
answers every GET with "origin PATH", cacheable for five minutes, and logs
"GET PATH" per request, so that a test can count what reached it."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG = int(sys.argv[1]), sys.argv[2]


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body go out in two writes: without this, the body waits for
    # the proxy's delayed ACK of the head (40 ms a response).
    disable_nagle_algorithm = True

    def do_GET(self):
        body = f"origin {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Cache-Control", "max-age=300")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with open(LOG, "a") as log:
            log.write(f"GET {self.path}\n")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", PORT), Origin).serve_forever()
