"""An IMDSv2 emulator: http://169.254.169.254 as seen from the lab's instances.

The address is added to the host side of each VPC network's bridge; one server per bridge
listens there (SO_BINDTODEVICE, so several labs can each have their own) and answers for the
instance whose private IP the request comes from. Tokens: PUT /latest/api/token with
X-aws-ec2-metadata-token-ttl-seconds (1-21600), then X-aws-ec2-metadata-token on every GET;
without a valid token: 401.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

# private IP -> the instance's metadata (instance-id, placement/availability-zone, ...), or None
Lookup = Callable[[str], "dict[str, str] | None"]


class _Handler(BaseHTTPRequestHandler):
    server: ImdsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: the lab log is for state changes
        return

    def _send(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            return self._send(404, "Not Found")
        if self.headers.get("X-Forwarded-For"):
            return self._send(403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._send(400, "Bad Request")
        token = self.server.issue(self.client_address[0], int(ttl))
        self._send(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl})

    def do_GET(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        if not self.server.valid(self.client_address[0], token):
            return self._send(401, "Unauthorized")
        meta = self.server.lookup(self.client_address[0])
        if meta is None:
            return self._send(404, "Not Found")
        path = self.path.split("?", 1)[0]
        if path == "/latest/dynamic/instance-identity/document":
            return self._send(200, json.dumps(_identity(meta), indent=2))
        if not path.startswith("/latest/meta-data"):
            return self._send(404, "Not Found")
        key = path[len("/latest/meta-data") :].strip("/")
        if key in meta:
            return self._send(200, meta[key])
        prefix = f"{key}/" if key else ""
        children = set()
        for k in meta:
            if k.startswith(prefix):
                head, sep, _ = k[len(prefix) :].partition("/")
                children.add(head + ("/" if sep else ""))
        if children:
            return self._send(200, "\n".join(sorted(children)))
        return self._send(404, "Not Found")


def _identity(meta: dict[str, str]) -> dict[str, str]:
    return {
        "instanceId": meta["instance-id"],
        "availabilityZone": meta["placement/availability-zone"],
        "region": meta["placement/region"],
        "privateIp": meta["local-ipv4"],
        "instanceType": meta["instance-type"],
        "imageId": meta["ami-id"],
        "accountId": meta.get("account-id", "123456789012"),
    }


class ImdsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, port: int, device: str | None, lookup: Lookup) -> None:
        self.device = device
        self.lookup = lookup
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        super().__init__((address, port), _Handler)

    def server_bind(self) -> None:
        if self.device:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
        super().server_bind()

    def issue(self, client: str, ttl: int) -> str:
        token = secrets.token_urlsafe(40)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (client, now + ttl)
        return token

    def valid(self, client: str, token: str) -> bool:
        with self._lock:
            entry = self._tokens.get(token)
        return entry is not None and entry[0] == client and entry[1] > time.monotonic()


class BridgeImds:
    """169.254.169.254/32 on one bridge plus its server; stop() removes both."""

    def __init__(self, device: str, address: str, port: int, lookup: Lookup) -> None:
        self.device, self.address = device, address
        self.ifindex: int | None = None
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", device], capture_output=True, check=False)
        self.server = ImdsServer(address, port, device, lookup)
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"imds-{device}", daemon=True)
        self.thread.start()
        log.info("IMDS at http://%s:%s on %s", address, port, device)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        remove_address(self.device, self.address)


def remove_address(device: str, address: str) -> None:
    subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", device], capture_output=True, check=False)
