"""AWS's public endpoints as the lab's instances see them: https://SERVICE.REGION.amazonaws.com, answered by moto.

An instance launched by an Auto Scaling group gets no push: it calls SSM, Auto Scaling and CloudWatch itself
(roles/boot's ec2-fleet-boot), signed with its instance profile's credentials from IMDS. On AWS an instance in a
private subnet reaches those endpoints only through a NAT gateway (its subnet's default route) or through an
interface VPC endpoint of the service with private DNS; otherwise the name resolves (public DNS) and the
connection times out. The lab does the same, so that a fleet that would not boot on its first AWS run does
not boot here either:

- every instance has the services' names in /etc/hosts (public DNS), at the address of the IMDS emulator on
  its VPC's bridge, where one HTTPS server per bridge listens on 443 (SO_BINDTODEVICE, as imds.py);
- its certificate (`*.REGION.amazonaws.com`) is signed by a CA of the lab's own, not the lab CA that signs the
  Redis, pooler and load balancer certificates: every instance trusts it from its first boot (the lab's
  cloud-init puts it in the system store, as an Ubuntu AMI trusts Amazon's roots), and nothing else does;
- a connection from an instance whose subnet has no route 0.0.0.0/0 to a NAT gateway, to a service without an
  available interface endpoint with private DNS in the instance's VPC, is held without a TLS handshake and
  closed after HOLD_SECONDS: the client sees the timeout it would see on AWS;
- the others are forwarded to moto, Host header and body as sent (moto tells the service by the signature's
  credential scope).
The endpoints' security groups are not evaluated (the lab evaluates none).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PORT = 443
HOLD_SECONDS = 60.0  # a held connection is closed after this long (clients time out sooner)
# What the hosts call: the boot agent (ssm, autoscaling), the CloudWatch agent (monitoring, logs), the SSM agent.
SERVICES = ("ssm", "ssmmessages", "ec2messages", "autoscaling", "monitoring", "logs", "ec2", "sts",
            "secretsmanager", "elasticloadbalancing")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}

# client IP -> the services it reaches ("*": all of them through a NAT gateway), or None for no lab instance
Reach = Callable[[str], "set[str] | None"]


def names(region: str) -> list[str]:
    return [f"{service}.{region}.amazonaws.com" for service in SERVICES]


def hosts_lines(address: str, region: str) -> str:
    """The /etc/hosts lines of every service's name."""
    return "".join(f"{address} {name}\n" for name in names(region))


def service_of(host: str) -> str:
    """ssm.us-east-1.amazonaws.com[:443] -> ssm."""
    return host.split(":", 1)[0].split(".", 1)[0].lower()


def reach_of_subnet(ec2: Any, vpc_id: str, subnet_id: str, region: str) -> set[str]:
    """The services an instance in the subnet reaches: all ("*") through a NAT gateway on its route table's
    default route, else those with an available interface endpoint with private DNS in the VPC."""
    tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
    table = next(iter(tables["RouteTables"]), None)
    if table is None:  # no explicit association: the VPC's main route table
        tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                    {"Name": "association.main", "Values": ["true"]}])
        table = next(iter(tables["RouteTables"]), None)
    for route in (table or {}).get("Routes", []):
        if route.get("DestinationCidrBlock") == "0.0.0.0/0" and route.get("NatGatewayId") \
                and route.get("State", "active") == "active":
            return {"*"}
    prefix = f"com.amazonaws.{region}."
    endpoints = ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["VpcEndpoints"]
    return {e["ServiceName"].removeprefix(prefix) for e in endpoints
            if e.get("VpcEndpointType") == "Interface" and e.get("PrivateDnsEnabled")
            and e.get("State", "available").lower() == "available" and e["ServiceName"].startswith(prefix)}


class _Handler(BaseHTTPRequestHandler):
    server: AwsEndpointServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def setup(self) -> None:
        # The TLS handshake here, in the request's thread, once the connection may go through (SNI names it).
        conn: ssl.SSLSocket = self.request
        conn.settimeout(30)
        try:
            conn.do_handshake()
        except (OSError, ssl.SSLError) as exc:
            self.server.refused_handshake(self.client_address[0], exc)
            raise
        super().setup()

    def _forward(self) -> None:
        service = service_of(self.headers.get("Host", ""))
        if not self.server.allowed(self.client_address[0], service):  # checked again: SNI is optional
            self.server.hold(self.connection)
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for k, v in response.getheaders():
                if k.lower() not in HOP_HEADERS and k.lower() != "content-length":
                    self.send_header(k, v)
        finally:
            upstream.close()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


class AwsEndpointServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: str, device: str | None, cert: Path, key: Path, reach: Reach,
                 upstream: tuple[str, int], port: int = PORT) -> None:
        self.device, self.reach, self.upstream = device, reach, upstream
        self.stopping = threading.Event()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.context.sni_callback = self._sni
        super().__init__((address, port), _Handler)

    def server_bind(self) -> None:
        if self.device:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()  # no handshake here: this is the accepting thread
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def allowed(self, client: str, service: str) -> bool:
        reach = self.reach(client)
        return reach is not None and ("*" in reach or service in reach)

    def _sni(self, conn: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> int | None:
        client = conn.getpeername()[0] if hasattr(conn, "getpeername") else ""
        if name and not self.allowed(client, service_of(name)):
            self.hold(conn)  # as a packet dropped on the way: no answer, then a closed connection
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        return None

    def handle_error(self, request: Any, client_address: Any) -> None:  # a held or dropped client: no traceback
        log.debug("AWS endpoint: request from %s failed", client_address, exc_info=True)

    def hold(self, conn: Any) -> None:
        self.stopping.wait(HOLD_SECONDS)

    def refused_handshake(self, client: str, exc: Exception) -> None:
        log.debug("AWS endpoint: no handshake with %s: %s", client, exc)

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class BridgeAwsEndpoints:
    """The endpoint server on one bridge, at the IMDS address (imds.py adds it and removes it)."""

    def __init__(self, device: str, address: str, cert: Path, key: Path, reach: Reach,
                 upstream: tuple[str, int]) -> None:
        self.server = AwsEndpointServer(address, device, cert, key, reach, upstream)
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"aws-{device}", daemon=True)
        self.thread.start()
        log.info("AWS endpoints at https://%s:%d on %s", address, PORT, device)

    def stop(self) -> None:
        self.server.stop()
