"""ec2-fleet-boot (roles/boot/files/usr/local/lib/ec2-fleet/ec2-fleet-boot), the instance's boot in asg mode.

Its SigV4 signatures equal botocore's; a whole boot runs against an IMDSv2 server of the test and moto's SSM
(behind a recorder that answers CompleteLifecycleAction, which moto lacks), on a temporary app tree: the env
file holds exactly the environment's parameters with the supervisor's format and modes, `current` follows the
environment's release, and the lifecycle hook gets CONTINUE, or ABANDON naming nothing secret when it fails.
The lab runs it on real instances (docs/auto-scaling.md)."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ec2_fleet_dev.plays import ROOT, moto_server

SCRIPT = ROOT / "roles" / "boot" / "files" / "usr" / "local" / "lib" / "ec2-fleet" / "ec2-fleet-boot"


def load_agent():
    loader = importlib.machinery.SourceFileLoader("ec2_fleet_boot", str(SCRIPT))
    spec = importlib.util.spec_from_loader("ec2_fleet_boot", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ec2_fleet_boot"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


boot = load_agent()
NOW = datetime.datetime(2026, 12, 6, 12, 30, 45, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("service", "body", "headers"),
    [
        ("ssm", b'{"Path": "/ec2-fleet/lab/app-env", "WithDecryption": true}',
         {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.GetParametersByPath"}),
        ("autoscaling", b"Action=CompleteLifecycleAction&Version=2011-01-01&InstanceId=i-0abc",
         {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("token", ["", "FwoGZXIvYXdzEJr//////////token+/="])
def test_the_signature_is_botocore_s(
    service: str, body: bytes, headers: dict, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://{service}.eu-west-1.amazonaws.com/"
    ours = boot.sign("POST", url, "eu-west-1", service, boot.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG",
                                                                          token), body, headers, now=NOW)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))  # its clock, ours
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token or None), service, "eu-west-1")
    signer.add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_the_env_file_is_the_supervisor_s_format() -> None:
    text = boot.env_file_text({"B": 'say "hi"\\n', "A": "line1\nline2"})
    assert text.splitlines()[1:] == ['A="line1\\nline2"', 'B="say \\"hi\\"\\\\n"']


class Imds(BaseHTTPRequestHandler):
    instance = "i-0123456789abcdef0"

    def log_message(self, *args) -> None:
        pass

    def do_PUT(self) -> None:
        self._send(200, "tok")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "tok":
            return self._send(401, "")
        answers = {
            "/latest/meta-data/instance-id": self.instance,
            "/latest/meta-data/placement/region": "us-east-1",
            "/latest/meta-data/iam/security-credentials/": "fleet-host\n",
            "/latest/meta-data/iam/security-credentials/fleet-host": json.dumps(
                {"AccessKeyId": "ASIATEST", "SecretAccessKey": "secret", "Token": "token"}),
        }  # fmt: skip
        self._send(200, answers[self.path]) if self.path in answers else self._send(404, "")

    def _send(self, status: int, body: str) -> None:
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())


def serve(handler) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def aws_front(moto_url: str, hooks: list[dict]):
    """SSM goes to moto; CompleteLifecycleAction (moto has none) is recorded and answered as AWS does."""

    class Front(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIATEST/")
            form = dict(urllib.parse.parse_qsl(body.decode())) if b"Action=" in body else {}
            if form.get("Action") == "CompleteLifecycleAction":
                hooks.append(form)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"<CompleteLifecycleActionResponse/>")
                return
            forward = urllib.request.Request(moto_url + "/", data=body, method="POST", headers=dict(self.headers))
            with urllib.request.urlopen(forward) as answer:
                data = answer.read()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(data)

    return Front


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    app_root = tmp_path / "srv"
    for release in ("1.0.0", "2.0.0"):
        (app_root / "releases" / release).mkdir(parents=True)
        (app_root / "releases" / release / ".installed").write_text("")
    (app_root / "current").symlink_to("releases/1.0.0")
    config = tmp_path / "etc"
    config.mkdir()
    (config / "orders-api.env").write_text("# baked: empty\n")
    commands: list[list[str]] = []
    monkeypatch.setattr(boot, "run", lambda argv, what, timeout: commands.append(argv) or "")
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: None)  # as root on the instance
    hooks: list[dict] = []
    with moto_server() as moto_url:
        ssm = boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x",
                           aws_secret_access_key="x")  # fmt: skip
        imds, imds_url = serve(Imds)
        front, front_url = serve(aws_front(moto_url, hooks))
        monkeypatch.setattr(boot, "IMDS", imds_url)
        path = f"/ec2-fleet/t{uuid.uuid4().hex[:8]}"  # moto's state outlives a server: a path per test
        args = ["--app", "orders-api", "--ssm-path", path, "--asg", "ec2-fleet-lab",
                "--lifecycle-hook", "launch", "--endpoint-url", front_url, "--app-root", str(app_root),
                "--config-dir", str(config)]  # fmt: skip
        yield {"ssm": ssm, "path": path, "args": args, "app_root": app_root, "env": config / "orders-api.env",
               "commands": commands, "hooks": hooks}  # fmt: skip
        imds.shutdown()
        front.shutdown()


def test_a_boot_writes_the_environment_s_env_file_runs_its_release_and_continues_the_hook(world, capsys) -> None:
    ssm, path = world["ssm"], world["path"]
    ssm.put_parameter(Name=f"{path}/app-env/DATABASE_URL", Value="postgresql://u:s3cret@db/orders",
                      Type="SecureString")  # fmt: skip
    ssm.put_parameter(Name=f"{path}/app-env/REDIS_URL", Value="rediss://:t0ken@cache:6379/0",
                      Type="SecureString")  # fmt: skip
    for n in range(12):  # more than a page of 10
        ssm.put_parameter(Name=f"{path}/app-env/SETTING_{n:02d}", Value=f"v{n}", Type="String")
    ssm.put_parameter(Name=f"{path}/app-env-other/IGNORED", Value="x", Type="String")
    ssm.put_parameter(Name=f"{path}/release", Value="2.0.0", Type="String")
    assert boot.main(world["args"]) == 0
    lines = world["env"].read_text().splitlines()
    assert lines[1:3] == ['DATABASE_URL="postgresql://u:s3cret@db/orders"', 'REDIS_URL="rediss://:t0ken@cache:6379/0"']
    assert len(lines) == 1 + 2 + 12 and 'SETTING_11="v11"' in lines
    assert oct(world["env"].stat().st_mode & 0o777) == "0o640"
    assert os.readlink(world["app_root"] / "current") == "releases/2.0.0"
    assert world["commands"] == [
        ["systemctl", "enable", "--now", "orders-api.target"],
        ["/usr/local/sbin/fleetctl", "reload", "orders-api", "--path=/ready", "--timeout=120"],
    ]
    assert world["hooks"] == [{"Action": "CompleteLifecycleAction", "Version": "2011-01-01",
                               "AutoScalingGroupName": "ec2-fleet-lab", "LifecycleHookName": "launch",
                               "LifecycleActionResult": "CONTINUE", "InstanceId": Imds.instance}]  # fmt: skip
    out = capsys.readouterr().out
    assert "s3cret" not in out and "t0ken" not in out and "DATABASE_URL" in out


def test_a_release_the_image_lacks_abandons_the_hook_and_starts_nothing(world, capsys) -> None:
    ssm, path = world["ssm"], world["path"]
    ssm.put_parameter(Name=f"{path}/app-env/DATABASE_URL", Value="postgresql://u:p@db/o", Type="SecureString")
    ssm.put_parameter(Name=f"{path}/release", Value="3.0.0", Type="String")
    assert boot.main(world["args"]) == 1
    assert world["commands"] == [] and world["env"].read_text() == "# baked: empty\n"
    assert world["hooks"][0]["LifecycleActionResult"] == "ABANDON"
    out = capsys.readouterr().out
    assert "the environment runs release 3.0.0, the image has 1.0.0" in out


def test_an_app_that_never_gets_ready_abandons_and_its_journal_says_why(world, capsys, monkeypatch) -> None:
    """An abandoned instance is terminated: the app's last journal lines in the boot's output are what is left."""
    ssm, path = world["ssm"], world["path"]
    ssm.put_parameter(Name=f"{path}/app-env/DATABASE_URL", Value="postgresql://u:p@db/o", Type="SecureString")

    def run(argv: list[str], what: str, timeout: float) -> str:
        world["commands"].append(argv)
        if argv[0].endswith("fleetctl"):
            raise boot.BootError(f"{what} failed (1): GET /ready: HTTP 503 (gave up after 120s)")
        return ""

    journal = []

    def journalctl(argv, **kwargs):
        journal.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout='{"msg": "ready: database down: too many clients"}\n')

    monkeypatch.setattr(boot, "run", run)
    monkeypatch.setattr(boot.subprocess, "run", journalctl)
    assert boot.main(world["args"]) == 1
    assert world["hooks"][0]["LifecycleActionResult"] == "ABANDON"
    assert journal == [["journalctl", "-u", "orders-api@*", "-n", "15", "--no-pager", "-o", "cat"]]
    assert "journal of orders-api: {\"msg\": \"ready: database down: too many clients\"}" in capsys.readouterr().out


def test_no_app_settings_abandons(world, capsys) -> None:
    assert boot.main(world["args"]) == 1
    assert f"no parameter under {world['path']}/app-env" in capsys.readouterr().out
    assert world["hooks"][0]["LifecycleActionResult"] == "ABANDON"


def test_bad_usage_is_refused() -> None:
    with pytest.raises(SystemExit) as exit_:
        boot.main(["--app", "a", "--ssm-path", "/x", "--asg", "g"])
    assert exit_.value.code == 2
