#!/usr/bin/python3
"""A tiny app for the supervisor scenario (standard library only).

Serves HTTP on every socket systemd passes (LISTEN_FDS), or on PORT. Knobs
the verify step uses: /sick makes /health fail, /alloc?mb=N grows memory,
/slow?ms=N holds a request, /whoami and /write?path=P show the sandbox.
"""

import json
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STATE = {"sick": False, "ballast": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print(f"fixture instance={os.environ.get('APP_INSTANCE')} " + fmt % args, flush=True)

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            return self.reply(500 if STATE["sick"] else 200, {"ok": not STATE["sick"]})
        if url.path == "/pid":
            return self.reply(200, {"pid": os.getpid(), "instance": os.environ.get("APP_INSTANCE")})
        if url.path == "/sick":
            STATE["sick"] = True
            return self.reply(200, {"sick": True})
        if url.path == "/alloc":
            STATE["ballast"].append(bytearray(int(q.get("mb", "10")) * 2**20))
            for chunk in STATE["ballast"]:  # touch every page so it is resident
                for i in range(0, len(chunk), 4096):
                    chunk[i] = 1
            return self.reply(200, {"allocated_mb": sum(len(c) for c in STATE["ballast"]) // 2**20})
        if url.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            return self.reply(200, {"slept_ms": int(q.get("ms", "1000")), "pid": os.getpid()})
        if url.path == "/whoami":
            return self.reply(200, {"uid": os.getuid(), "gid": os.getgid()})
        if url.path == "/env":
            return self.reply(200, {"value": os.environ.get(q.get("key", ""))})
        if url.path == "/write":
            try:
                with open(q["path"], "w") as fh:
                    fh.write("x")
                return self.reply(200, {"written": True})
            except OSError as exc:
                return self.reply(200, {"written": False, "error": exc.strerror})
        return self.reply(404, {"error": "not found"})


class Server(ThreadingHTTPServer):
    daemon_threads = False      # in-flight requests finish before exit
    block_on_close = True


def servers():
    count = int(os.environ.get("LISTEN_FDS", "0")) if os.environ.get("LISTEN_PID") == str(os.getpid()) else 0
    if count:
        for fd in range(3, 3 + count):
            srv = Server(("", 0), Handler, bind_and_activate=False)
            srv.socket.close()
            srv.socket = socket.socket(fileno=fd)
            yield srv
    else:
        yield Server(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)


def main():
    running = list(servers())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in running]
    for t in threads:
        t.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"fixture instance={os.environ.get('APP_INSTANCE')} pid={os.getpid()} serving", flush=True)
    stop.wait()
    print("fixture: SIGTERM, finishing in-flight requests", flush=True)
    for s in running:
        s.shutdown()
        s.server_close()


if __name__ == "__main__":
    main()
