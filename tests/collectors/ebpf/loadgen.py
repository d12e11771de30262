"""A keep-alive HTTP/1.1 server and a threaded client, run as separate processes.

Used by the flood test and by bench/collect.py. `python -m tests.collectors.ebpf.loadgen
serve PORT` serves; `... client PORT SECONDS CONNECTIONS` prints the number of
requests completed, then one latency per line is not kept (only counts).
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"ok\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        return None


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def client(port: int, seconds: float, connections: int) -> int:
    """Each thread keeps one connection and sends requests until time is up."""
    deadline = time.monotonic() + seconds
    counts = [0] * connections

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.monotonic() < deadline:
            conn.request("GET", f"/flood/{index}/{n}")
            conn.getresponse().read()
            n += 1
        counts[index] = n
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        print(client(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
