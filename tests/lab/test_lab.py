"""The local AWS lab, driven with boto3 the way the provision playbooks drive it: instances become
SSH-able containers with IMDSv2, a replication group becomes a TLS+AUTH Redis at its endpoint name,
the load balancer follows registrations and health checks and drains, `down` leaves nothing.

The tests run in file order and share one lab (module fixtures); each step names what it waits for."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ec2_fleet_dev.labs import LAB_TAGS, Lab, wait_for

WEB_SERVER = r"""
import http.server, sys, time
IID = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        with open("/run/web.hits", "a") as hits:
            hits.write(".")
        if self.path.startswith("/slow"):
            time.sleep(4)
        body = (IID + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""

IMDS_CLIENT = r"""
import json, urllib.request as u, urllib.error
base = "http://169.254.169.254/latest"
def get(path, token=None):
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    try:
        return u.urlopen(u.Request(base + path, headers=headers), timeout=3).read().decode()
    except urllib.error.HTTPError as e:
        return e.code
token = u.urlopen(u.Request(base + "/api/token", method="PUT",
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}), timeout=3).read().decode()
print(json.dumps({
    "id": get("/meta-data/instance-id", token),
    "az": get("/meta-data/placement/availability-zone", token),
    "no_token": get("/meta-data/instance-id"),
    "bad_token": get("/meta-data/instance-id", "x" * 20),
}))
"""

REDIS_CLIENT = r"""
import json, socket, ssl, sys, time
host, port, token, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def talk(tok, tls=True):
    raw = socket.create_connection((host, port), timeout=5)
    s = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=host) if tls else raw
    s.sendall(f"AUTH {tok}\r\nPING\r\n".encode())
    data, deadline = b"", time.time() + 5
    while data.count(b"\r\n") < 2 and time.time() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
out = {"good": talk(token), "bad": talk("not-the-token-0123456789")}
try:
    out["plain"] = talk(token, tls=False)
except Exception as e:
    out["plain"] = f"error: {e}"
print(json.dumps(out))
"""


def exec_python(container: str, code: str, *args: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        ["podman", "exec", container, "python3", "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def ssh(lab: Lab, ip: str, command: str, via: str | None = None, key: str | None = None) -> subprocess.CompletedProcess:
    """SSH as ubuntu to ip, through the bastion at `via` when given (as the playbooks do: docs/access.md)."""
    options = ["-i", key or lab.endpoints["ssh_private_key_file"], "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=3",
               "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes"]
    if via:
        jump = " ".join(["ssh", *options, "-W", "%h:%p", f"ubuntu@{via}"])
        options += ["-o", f"ProxyCommand={jump}"]
    return subprocess.run(["ssh", *options, f"ubuntu@{ip}", command], capture_output=True, text=True, timeout=20)


def alive(pid: int) -> bool:
    """True while the process runs (an exited one that its new parent has not reaped yet is a zombie: gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def container_of(lab: Lab, instance_id: str) -> str:
    return f"{lab.name}-{instance_id}"


def health(lab: Lab, tg_arn: str, ids: list[str] | None = None) -> dict[str, str]:
    kwargs: dict[str, Any] = {"TargetGroupArn": tg_arn}
    if ids:
        kwargs["Targets"] = [{"Id": i} for i in ids]
    answer = lab.client("elbv2").describe_target_health(**kwargs)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in answer}


def lab_tls(lab: Lab) -> ssl.SSLContext:
    """What a client of the lab's load balancer trusts: the lab CA, nothing else."""
    return ssl.create_default_context(cafile=lab.endpoints["lb_ca_file"])


def lb_get(lab: Lab, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """GET through the load balancer's HTTPS listener, verified with the lab CA."""
    try:
        with urllib.request.urlopen(lab.endpoints["lb_url"] + path, timeout=timeout, context=lab_tls(lab)) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return 0, str(e)


# --- start-up ---------------------------------------------------------------------------------------


def test_up_publishes_endpoints_and_the_database_secret_in_ssm(lab: Lab) -> None:
    e = lab.endpoints
    assert e["aws_url"] == f"http://127.0.0.1:{lab.env['EC2_FLEET_LAB_MOTO_PORT']}"
    assert e["lb_url"] == f"https://127.0.0.1:{lab.env['EC2_FLEET_LAB_LB_HTTPS_PORT']}"
    assert e["lb_http_url"] == f"http://127.0.0.1:{lab.env['EC2_FLEET_LAB_LB_PORT']}"
    assert e["registration_delay"] == 10  # the lab's default
    assert Path(e["redis_ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    ssm = lab.client("ssm")
    param = ssm.get_parameter(Name="/ec2-fleet/lab/database_url", WithDecryption=True)["Parameter"]
    assert param["Type"] == "SecureString"
    assert param["Value"].startswith("postgresql://app:") and "@db.lab.internal:5432/orders" in param["Value"]
    ami = ssm.get_parameter(Name="/ec2-fleet/lab/ubuntu-ami-id")["Parameter"]["Value"]
    images = lab.client("ec2").describe_images(ImageIds=[ami])["Images"]
    assert "ubuntu" in images[0]["Name"]
    # The HTTPS listener's certificate: from the lab CA, imported into ACM, its ARN in SSM for the inventory.
    arn = ssm.get_parameter(Name="/ec2-fleet/lab/alb-certificate-arn")["Parameter"]["Value"]
    assert arn == e["lb_certificate_arn"]
    cert = lab.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    assert (cert["Type"], cert["Status"], cert["Issuer"]) == ("IMPORTED", "ISSUED", "ec2-fleet lab CA")
    assert "*.us-east-1.elb.amazonaws.com" in cert["SubjectAlternativeNames"]
    # Nothing answers yet behind the load balancer: no listener forwards anywhere.
    assert lb_get(lab)[0] == 503


# --- instances --------------------------------------------------------------------------------------


def test_running_instances_become_containers_with_their_ip_and_the_key_pair(
    lab: Lab, fleet: dict, tmp_path: Path
) -> None:
    _, bastion = fleet["bastion"]
    for instance_id, ip in [*fleet["instances"], fleet["bastion"]]:
        name = container_of(lab, instance_id)
        wait_for(f"container {name}", lambda n=name: lab.containers().get(n) == "running", 60)
        inspect = json.loads(subprocess.run(["podman", "inspect", name], capture_output=True, text=True).stdout)[0]
        addresses = [n["IPAddress"] for n in inspect["NetworkSettings"]["Networks"].values()]
        assert addresses == [ip]
        via = None if ip == bastion else bastion
        result = wait_for(
            f"SSH as ubuntu on {ip}",
            lambda ip=ip, via=via: (r := ssh(lab, ip, "id -un; hostname", via=via)).returncode == 0 and r, 60,
        )
        assert result.stdout.split() == ["ubuntu", "ip-" + ip.replace(".", "-")]
    lab.facts["launch_to_ssh_seconds"] = time.monotonic() - fleet["launched"]
    # No route from the control node to a private instance's SSH port: only through the bastion.
    ip = fleet["instances"][0][1]
    direct = ssh(lab, ip, "true")
    assert direct.returncode == 255 and "timed out" in direct.stderr, direct.stderr
    # A key the lab did not import is refused.
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    refused = ssh(lab, bastion, "true", key=str(other))
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused.stderr


def test_imdsv2_answers_each_instance_with_its_own_id(lab: Lab, fleet: dict) -> None:
    for n, (instance_id, _) in enumerate(fleet["instances"]):
        answer = json.loads(exec_python(container_of(lab, instance_id), IMDS_CLIENT))
        assert answer == {"id": instance_id, "az": f"us-east-1{'ab'[n]}", "no_token": 401, "bad_token": 401}


def test_the_database_answers_at_its_alias_with_the_ssm_url(lab: Lab, fleet: dict) -> None:
    url = lab.client("ssm").get_parameter(Name="/ec2-fleet/lab/database_url", WithDecryption=True)["Parameter"]["Value"]
    container = container_of(lab, fleet["instances"][0][0])
    db_ip = exec_python(container, "import socket; print(socket.gethostbyname('db.lab.internal'))").strip()
    host_url = url.replace("db.lab.internal", db_ip)

    def query() -> Any:
        try:
            with psycopg.connect(host_url, connect_timeout=3) as conn:
                return conn.execute("select current_user, current_database()").fetchone()
        except psycopg.OperationalError:
            return None

    assert wait_for("PostgreSQL", query, 60) == ("app", "orders")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host_url.replace("postgresql://app:", "postgresql://app:wrong"), connect_timeout=3)


# --- cache ------------------------------------------------------------------------------------------


def test_replication_group_is_a_real_tls_redis_with_auth_at_its_endpoint(lab: Lab, fleet: dict) -> None:
    ec = lab.client("elasticache")
    ec.create_cache_subnet_group(
        CacheSubnetGroupName=f"{lab.name}-cache", CacheSubnetGroupDescription="lab test", SubnetIds=fleet["subnets"]
    )
    token = "lab-test-token-0123456789"
    group = ec.create_replication_group(
        ReplicationGroupId=f"{lab.name}-rg", ReplicationGroupDescription="lab test", Engine="redis",
        CacheNodeType="cache.t4g.small", NumCacheClusters=1, TransitEncryptionEnabled=True, AuthToken=token,
        CacheSubnetGroupName=f"{lab.name}-cache", Tags=LAB_TAGS,
    )["ReplicationGroup"]  # fmt: skip
    endpoint = group["NodeGroups"][0]["PrimaryEndpoint"]
    redis_container = f"{lab.name}-redis-{lab.name}-rg"
    wait_for("the Redis container", lambda: lab.containers().get(redis_container) == "running", 60)
    instance = container_of(lab, fleet["instances"][1][0])
    subprocess.run(["podman", "cp", lab.endpoints["redis_ca_file"], f"{instance}:/tmp/lab-ca.crt"], check=True)

    def ping() -> Any:
        try:
            return json.loads(
                exec_python(
                    instance, REDIS_CLIENT, endpoint["Address"], str(endpoint["Port"]), token, "/tmp/lab-ca.crt"
                )
            )
        # Not listening yet, or (a hung exec) the endpoint's name not resolvable in the VPC yet.
        except (AssertionError, subprocess.TimeoutExpired):
            return None

    answer = wait_for("PONG over TLS", ping, 90)
    assert answer["good"] == "+OK\r\n+PONG\r\n"
    assert answer["bad"].startswith("-WRONGPASS")
    assert "+PONG" not in answer["plain"]  # TLS only
    lab.facts["redis_endpoint"] = endpoint["Address"]


# --- load balancer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target_group(lab: Lab, fleet: dict) -> str:
    elbv2 = lab.client("elbv2")
    tg = elbv2.create_target_group(
        Name=f"{lab.name}-tg", Protocol="HTTP", Port=8000, VpcId=fleet["vpc"], TargetType="instance",
        HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2, UnhealthyThresholdCount=2, Matcher={"HttpCode": "200"}, Tags=LAB_TAGS,
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "6"}]
    )
    # As roles/aws_alb makes it: HTTPS on 443 with the lab's certificate forwards, HTTP on 80 redirects.
    alb = elbv2.create_load_balancer(Name=f"{lab.name}-alb", Subnets=fleet["subnets"], Tags=LAB_TAGS)
    lb_arn = alb["LoadBalancers"][0]["LoadBalancerArn"]
    lab.facts["alb_dns_name"] = alb["LoadBalancers"][0]["DNSName"]
    elbv2.create_listener(
        LoadBalancerArn=lb_arn, Protocol="HTTPS", Port=443, Certificates=[{"CertificateArn": lab.endpoints[
            "lb_certificate_arn"]}], DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}],
    )  # fmt: skip
    elbv2.create_listener(
        LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80, DefaultActions=[{"Type": "redirect", "RedirectConfig": {
            "Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
            "StatusCode": "HTTP_301"}}],
    )  # fmt: skip
    for instance_id, _ in fleet["instances"]:
        start_web(lab, instance_id)
    return tg


def start_web(lab: Lab, instance_id: str) -> None:
    name = container_of(lab, instance_id)
    subprocess.run(["podman", "exec", "-i", name, "sh", "-c", "cat > /usr/local/bin/web.py"], input=WEB_SERVER,
                   text=True, check=True)  # fmt: skip
    subprocess.run(
        [
            "podman",
            "exec",
            "-d",
            name,
            "sh",
            "-c",
            f"echo $$ > /run/web.pid; exec python3 /usr/local/bin/web.py {instance_id}",
        ],
        check=True,
        capture_output=True,
    )


def stop_web(lab: Lab, instance_id: str) -> None:
    subprocess.run(
        ["podman", "exec", container_of(lab, instance_id), "sh", "-c", 'kill "$(cat /run/web.pid)"'], check=True
    )


def web_hits(lab: Lab, instance_id: str) -> int:
    """Requests the instance's web server has received (health checks included)."""
    out = subprocess.run(["podman", "exec", container_of(lab, instance_id), "cat", "/run/web.hits"],
                         capture_output=True, text=True)  # fmt: skip
    return len(out.stdout.strip())


def test_new_targets_stay_initial_for_the_registration_delay_then_take_traffic_once_healthy(
    lab: Lab, fleet: dict, target_group: str
) -> None:
    ids = [i for i, _ in fleet["instances"]]
    delay = lab.endpoints["registration_delay"]
    lab.client("elbv2").register_targets(TargetGroupArn=target_group, Targets=[{"Id": i} for i in ids])
    registered = time.monotonic()
    assert health(lab, target_group) == dict.fromkeys(ids, "initial")
    # The registration delay: still initial, not one health check and no traffic reached a target.
    while time.monotonic() - registered < delay - 2:
        assert health(lab, target_group) == dict.fromkeys(ids, "initial")
        assert lb_get(lab)[0] == 503
        time.sleep(1)
    assert [web_hits(lab, i) for i in ids] == [0, 0]
    wait_for("both targets healthy", lambda: health(lab, target_group) == dict.fromkeys(ids, "healthy"), delay + 30)
    lab.facts["register_to_healthy_seconds"] = time.monotonic() - registered
    assert lab.facts["register_to_healthy_seconds"] >= delay
    answers = [lb_get(lab) for _ in range(20)]
    assert {status for status, _ in answers} == {200}
    assert {body for _, body in answers} == set(ids)
    assert all(web_hits(lab, i) > 0 for i in ids)
    # A new target group reloads HAProxy: the targets stay healthy and keep serving.
    lab.client("elbv2").create_target_group(
        Name=f"{lab.name}-tg2", Protocol="HTTP", Port=8001, VpcId=fleet["vpc"], TargetType="instance"
    )
    time.sleep(2)
    assert "tg2" in (lab.state_dir / "haproxy" / "haproxy.cfg").read_text()
    assert health(lab, target_group) == dict.fromkeys(ids, "healthy")
    answers = [lb_get(lab) for _ in range(10)]
    assert {status for status, _ in answers} == {200} and {body for _, body in answers} == set(ids)


def test_https_answers_with_the_lab_ca_for_the_alb_name_and_http_redirects_with_301(
    lab: Lab, fleet: dict, target_group: str
) -> None:
    https_port, http_port = int(lab.env["EC2_FLEET_LAB_LB_HTTPS_PORT"]), int(lab.env["EC2_FLEET_LAB_LB_PORT"])
    # The certificate holds for the ALB's DNS name too (SNI and hostname check against the lab CA).
    with (
        socket.create_connection(("127.0.0.1", https_port), timeout=5) as raw,
        lab_tls(lab).wrap_socket(raw, server_hostname=lab.facts["alb_dns_name"]) as tls,
    ):
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {lab.facts['alb_dns_name']}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while len(reply) < 65536 and (chunk := tls.recv(4096)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    # A client that does not trust the lab CA refuses the certificate.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(lab.endpoints["lb_url"] + "/", timeout=5)
    # HTTP answers 301 to the same host, path and query over HTTPS, as the ALB's redirect listener does.
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    try:
        conn.request("GET", "/version?probe=1")
        answer = conn.getresponse()
        assert answer.status == 301
        assert answer.getheader("Location") == f"https://127.0.0.1:{https_port}/version?probe=1"
    finally:
        conn.close()
    with urllib.request.urlopen(lab.endpoints["lb_http_url"] + "/", timeout=5, context=lab_tls(lab)) as followed:
        assert followed.status == 200 and followed.url.startswith("https://127.0.0.1:")


def test_a_failing_target_turns_unhealthy_and_gets_no_traffic(lab: Lab, fleet: dict, target_group: str) -> None:
    (a, _), (b, _) = fleet["instances"]
    stop_web(lab, a)
    stopped = time.monotonic()
    wait_for(f"{a} unhealthy", lambda: health(lab, target_group) == {a: "unhealthy", b: "healthy"}, 30)
    lab.facts["stop_to_unhealthy_seconds"] = time.monotonic() - stopped
    answers = [lb_get(lab) for _ in range(20)]
    assert answers == [(200, b)] * 20
    start_web(lab, a)
    wait_for(f"{a} healthy again", lambda: health(lab, target_group) == {a: "healthy", b: "healthy"}, 30)


def test_deregistration_drains_for_the_delay_without_failed_requests(lab: Lab, fleet: dict, target_group: str) -> None:
    (a, _), (b, _) = fleet["instances"]
    slow: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: slow.append(lb_get(lab, "/slow", timeout=15))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)  # the slow requests are in flight on both targets
    lab.client("elbv2").deregister_targets(TargetGroupArn=target_group, Targets=[{"Id": a}])
    deregistered = time.monotonic()
    assert health(lab, target_group) == {a: "draining", b: "healthy"}
    answers: list[tuple[float, int, str]] = []
    states: list[tuple[float, str]] = []  # (seconds after the call, a's state), read about once a second
    while time.monotonic() - deregistered < 5 and len(answers) < 300:  # bounded: inside the 6 s delay
        status, body = lb_get(lab)
        answers.append((time.monotonic() - deregistered, status, body))
        if time.monotonic() - deregistered > len(states) + 1:
            state = health(lab, target_group).get(a, "gone")
            states.append((time.monotonic() - deregistered, state))
        time.sleep(0.02)
    # Judged on the reads that ended inside the 6 s delay (a loaded machine can stretch the loop).
    inside = [state for t, state in states if t < 5.8]
    assert inside and set(inside) == {"draining"}, states
    assert [r for r in answers if r[1] != 200] == [], "failed requests while draining"
    assert {body for t, _, body in answers if t > 1.0} == {b}, "new requests reached the draining target"
    for t in threads:
        t.join(20)
    assert sorted(slow) == sorted([(200, a), (200, a), (200, b), (200, b)]), "in-flight requests did not finish"
    wait_for(f"{a} gone after the delay", lambda: health(lab, target_group) == {b: "healthy"}, 15)
    lab.facts["drain_seconds"] = time.monotonic() - deregistered
    assert health(lab, target_group, [a]) == {a: "unused"}
    assert {lb_get(lab)[1] for _ in range(10)} == {b}


def test_status_prints_the_fleet_table(lab: Lab, fleet: dict, target_group: str) -> None:
    (a, ip_a), (b, ip_b) = fleet["instances"]

    # The table is refreshed every second: wait until it shows the end of the drain.
    def settled() -> str:
        out = lab.labctl("status").stdout
        return "" if "draining" in out else out

    out = wait_for("status after the drain", settled, 10)
    assert lab.endpoints["lb_url"] in out
    row_b = next(line for line in out.splitlines() if line.startswith(b))
    assert ip_b in row_b and "running" in row_b and f"{lab.name}-tg:healthy" in row_b
    assert lab.facts["redis_endpoint"] in row_b
    row_a = next(line for line in out.splitlines() if line.startswith(a))
    assert ip_a in row_a and "not registered" in row_a


def test_terminated_instance_loses_its_container(lab: Lab, fleet: dict) -> None:
    a = fleet["instances"][0][0]
    lab.client("ec2").terminate_instances(InstanceIds=[a])
    terminated = time.monotonic()
    wait_for(f"container of {a} removed", lambda: container_of(lab, a) not in lab.containers(), 30)
    lab.facts["terminate_to_removed_seconds"] = time.monotonic() - terminated
    assert lab.containers().get(container_of(lab, fleet["instances"][1][0])) == "running"


# --- down -------------------------------------------------------------------------------------------


def test_down_removes_everything(lab: Lab, fleet: dict) -> None:
    nets = subprocess.run(
        ["podman", "network", "ls", "--filter", f"label=ec2-fleet-lab={lab.name}", "--format", "{{.Name}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # The VPC's network, and the internet network of the lab's external Redis (outside every VPC).
    vpc_nets = [name for name in nets if not name.endswith("-internet")]
    assert len(vpc_nets) == 1 and len(nets) == 2, nets
    device = json.loads(
        subprocess.run(["podman", "network", "inspect", vpc_nets[0]], capture_output=True, text=True).stdout
    )[0]["network_interface"]
    assert (
        "169.254.169.254/32"
        in subprocess.run(["ip", "-4", "addr", "show", device], capture_output=True, text=True).stdout
    )
    started = time.monotonic()
    result = lab.labctl("down", timeout=180)
    assert result.returncode == 0, result.stderr
    lab.facts["down_seconds"] = time.monotonic() - started
    assert lab.containers() == {}
    assert subprocess.run(
        ["podman", "network", "ls", "--filter", f"label=ec2-fleet-lab={lab.name}", "--format", "{{.Name}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split() == []  # fmt: skip
    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    assert not [line for line in addresses.splitlines() if f" {device} " in line]
    assert not alive(lab.endpoints["pid"]), "the controller still runs"
    processes = subprocess.run(["pgrep", "-af", str(lab.state_dir)], capture_output=True, text=True).stdout
    assert processes == "", processes  # HAProxy's command line names its config in the state dir
    for port in (lab.env["EC2_FLEET_LAB_MOTO_PORT"], lab.env["EC2_FLEET_LAB_LB_PORT"]):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(OSError):
        urllib.request.urlopen(lab.endpoints["lb_url"] + "/", timeout=2, context=lab_tls(lab))
    assert {p.name for p in Path(lab.state_dir).iterdir()} <= {"controller.log", "haproxy.log"}
    assert lab.labctl("status").returncode == 3
    print("\nlab figures:", json.dumps({k: round(v, 1) for k, v in lab.facts.items() if isinstance(v, float)}))
