"""Web: serves a status page, /healthz/, and POST /enqueue."""
import http.server
import os
import sys
import time

from common import DONE, QUEUE, enqueue

PORT = int(os.environ.get("PORT", sys.argv[1] if len(sys.argv) > 1 else "8080"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/healthz"):
            return self._send(200, "ok\n")
        queued = sorted(p.name for p in QUEUE.glob("*.job"))
        done = sorted(p.name for p in DONE.glob("*.done"))
        body = f"prodserver demo\nqueued: {len(queued)}\ndone: {len(done)}\n" + "".join(f"  {d}\n" for d in done[-10:])
        self._send(200, body)

    def do_POST(self):
        if self.path.startswith("/enqueue"):
            job = enqueue(f"web-{time.time_ns()}", "from web")
            return self._send(202, f"queued {job.name}\n")
        self._send(404, "not found\n")

    def _send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(f"{self.address_string()} {fmt % args}", flush=True)


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"web: listening on http://127.0.0.1:{PORT}/", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
# SIGTERM's default action ends the process: a clean stop for prodserver.
