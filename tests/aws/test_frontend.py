"""playbooks/frontend.yml against moto, served by the lab's edge (devkit/src/ec2_fleet_dev/lab/edge.py).

The bucket and distribution as AWS reports them, the OAC and the bucket policy, a second run that changes
nothing, check mode on a fresh account, the order of the uploads, keep-N pruning, rollback, invalidation of
/index.html only, the bad inputs refused before any change, and two deploys and a rollback under a steady
page-load loop through the edge (0 failed asset loads)."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from ec2_fleet_dev.lab import keys
from ec2_fleet_dev.lab.edge import Edge, patch
from ec2_fleet_dev.moto_aws import REGION, Run
from ec2_fleet_dev.plays import free_port

BUCKET = "ec2-fleet-lab-frontend"
patch()  # moto keeps the origin's OAC (the session's moto runs in this process)


def make_dist(root: Path, tag: str) -> Path:
    """A build as Vite makes one: index.html referencing two hashed assets, and build.json."""
    dist = root / tag
    (dist / "assets").mkdir(parents=True)
    js = f"console.log('release {tag}');\n".encode()
    css = f"body {{ --release: '{tag}'; }}\n".encode()
    names = {}
    for stem, ext, body in (("index", "js", js), ("index", "css", css)):
        name = f"{stem}-{hashlib.sha256(body).hexdigest()[:8]}.{ext}"
        (dist / "assets" / name).write_bytes(body)
        names[ext] = name
    (dist / "index.html").write_text(
        f'<!doctype html><html><head><meta name="release" content="{tag}">'
        f'<script type="module" src="/assets/{names["js"]}"></script>'
        f'<link rel="stylesheet" href="/assets/{names["css"]}"></head><body><div id="app"></div></body></html>\n'
    )
    (dist / "build.json").write_text(json.dumps({"tag": tag}) + "\n")
    return dist


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory):
    tls = tmp_path_factory.mktemp("edge-tls")
    ca = keys.ca(tls)
    cert, key = keys.server_cert(ca[0], ca[1], tls / "edge", ["localhost"], ["127.0.0.1"])
    server = Edge("127.0.0.1", free_port(), cert, key, environment="lab")
    server.start()
    context = ssl.create_default_context(cafile=str(ca[0]))
    try:
        yield server, context
    finally:
        server.stop()


def fetch(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def load_page(base: str, context: ssl.SSLContext) -> tuple[str, int]:
    """Load index.html, then every asset it references, as a browser does: (release, failed loads)."""
    status, _, body = fetch(f"{base}/", context)
    if status != 200:
        return "", 1
    html = body.decode()
    failed = 0
    for path in re.findall(r'(?:src|href)="(/assets/[^"]+)"', html):
        if fetch(f"{base}{path}", context)[0] != 200:
            failed += 1
    match = re.search(r'name="release" content="([^"]+)"', html)
    return (match.group(1) if match else ""), failed


@pytest.fixture(scope="module")
def deploy(run: Callable[..., Run], tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Run]:
    audit = tmp_path_factory.mktemp("frontend-audit")

    def _deploy(extra: dict | None = None, *args: str, json_output: bool = False) -> Run:
        env = {"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"} if json_output else None
        return run(
            "playbooks/frontend.yml",
            {"frontend_audit_dir": str(audit), "frontend_keep_releases": 1, **(extra or {})},
            *args,
            env=env,
        )

    _deploy.audit = audit  # type: ignore[attr-defined]
    return _deploy


def task_result(out: str, name: str) -> dict:
    """The localhost result of the task named name, from the json callback's output."""
    data, _ = json.JSONDecoder().raw_decode(out[out.index("{") :])
    for play in data["plays"]:
        for task in play["tasks"]:
            if name in task["task"]["name"]:
                return task["hosts"]["localhost"]
    raise AssertionError(f"no task {name!r}")


def nothing_created(client: Callable) -> None:
    buckets = [b["Name"] for b in client("s3").list_buckets().get("Buckets", [])]
    assert BUCKET not in buckets
    assert not client("cloudfront").list_distributions()["DistributionList"].get("Items")
    assert not client("cloudfront").list_origin_access_controls()["OriginAccessControlList"].get("Items")


def test_bad_inputs_refused_before_any_change(deploy, client, tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "a")
    bad = deploy({"frontend_src": str(dist), "frontend_bucket_name": "Frontend_Bucket"})
    assert bad.rc != 0
    assert "frontend_bucket_name is not a valid S3 bucket name (got 'Frontend_Bucket')" in bad.output
    # A certificate for the domain exists, but in eu-west-1: CloudFront takes us-east-1's only.
    ca = keys.ca(tmp_path / "ca")
    cert, key = keys.server_cert(ca[0], ca[1], tmp_path / "cert", ["app.example.com"], [])
    acm_eu = boto3.client(
        "acm",
        region_name="eu-west-1",
        endpoint_url=client("s3").meta.endpoint_url,
        aws_access_key_id="pytest-checks",
        aws_secret_access_key="testing",
    )
    acm_eu.import_certificate(Certificate=cert.read_bytes(), PrivateKey=key.read_bytes())
    nocert = deploy({"frontend_src": str(dist), "frontend_domain": "app.example.com"})
    assert nocert.rc != 0
    assert "frontend_domain 'app.example.com' has no ISSUED ACM certificate in us-east-1" in nocert.output
    nothing_created(client)


def test_check_mode_on_a_fresh_account_changes_nothing(deploy, client, tmp_path: Path) -> None:
    checked = deploy({"frontend_src": str(make_dist(tmp_path, "a"))}, "--check", "--diff")
    assert checked.rc == 0, checked.tail()
    nothing_created(client)


def test_deploy_settings_idempotence_and_edge(deploy, client, edge, tmp_path: Path) -> None:
    server, context = edge
    dist_a = make_dist(tmp_path, "a")
    first = deploy({"frontend_src": str(dist_a)}, json_output=True)
    assert first.rc == 0, first.output[-3000:]
    published = task_result(first.output, "Publish the release to")
    uploaded = published["uploaded"]
    # Assets first, the release's index.html copy, then index.html, then the manifest.
    assert uploaded.index("index.html") > max(uploaded.index(k) for k in uploaded if k.startswith("assets/"))
    assert uploaded[-1] == "_releases/manifest.json"

    s3, cf = client("s3"), client("cloudfront")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == {k: True for k in block} and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    ownership = s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"][0]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert tags["Project"] == "ec2-fleet" and tags["Environment"] == "lab"

    (item,) = cf.list_distributions()["DistributionList"]["Items"]
    config = cf.get_distribution_config(Id=item["Id"])["DistributionConfig"]
    (origin,) = config["Origins"]["Items"]
    oac = cf.get_origin_access_control(Id=origin["OriginAccessControlId"])["OriginAccessControl"]
    oac_config = oac["OriginAccessControlConfig"]
    assert (oac_config["SigningProtocol"], oac_config["OriginAccessControlOriginType"]) == ("sigv4", "s3")
    assert origin["DomainName"] == f"{BUCKET}.s3.{REGION}.amazonaws.com"
    assert config["DefaultRootObject"] == "index.html"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    errors = {
        (e["ErrorCode"], e["ResponsePagePath"], e["ResponseCode"]) for e in config["CustomErrorResponses"]["Items"]
    }
    assert errors == {(403, "/index.html", "200"), (404, "/index.html", "200")}
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"AWS:SourceArn": item["ARN"]}}

    second = deploy({"frontend_src": str(dist_a)})
    assert second.rc == 0, second.tail()
    assert second.recap()["localhost"]["changed"] == 0, second.tail()

    # Through the edge: the root object, the SPA fallback, the cache headers.
    base = server.url
    assert load_page(base, context) == ("a", 0)
    status, _, body = fetch(f"{base}/orders/42", context)
    assert status == 200 and b'content="a"' in body
    asset = re.search(rb'src="(/assets/[^"]+)"', body).group(1).decode()
    assert fetch(f"{base}{asset}", context)[1]["Cache-Control"] == "public, max-age=31536000, immutable"
    assert fetch(f"{base}/index.html", context)[1]["Cache-Control"] == "no-cache"


def test_edge_keeps_a_cached_index_until_invalidated_and_refuses_without_the_oac_policy(client, edge) -> None:
    server, context = edge
    s3, cf = client("s3"), client("cloudfront")
    (item,) = cf.list_distributions()["DistributionList"]["Items"]
    original = s3.get_object(Bucket=BUCKET, Key="index.html")
    body = original["Body"].read()
    # An index.html that says the edge may keep it 10 minutes, written behind the playbook's back.
    s3.put_object(Bucket=BUCKET, Key="probe.html", Body=b"one", CacheControl="max-age=600", ContentType="text/html")
    assert fetch(f"{server.url}/probe.html", context)[2] == b"one"
    s3.put_object(Bucket=BUCKET, Key="probe.html", Body=b"two", CacheControl="max-age=600", ContentType="text/html")
    assert fetch(f"{server.url}/probe.html", context)[2] == b"one"  # stale until its TTL or an invalidation
    cf.create_invalidation(
        DistributionId=item["Id"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/probe.html"]}, "CallerReference": "probe"},
    )
    assert fetch(f"{server.url}/probe.html", context)[2] == b"two"
    # A bucket opened to everyone instead of the OAC policy: the edge (CloudFront) is refused.
    policy = s3.get_bucket_policy(Bucket=BUCKET)["Policy"]
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}
        ],
    }
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(public))
    try:
        time.sleep(1.5)  # index.html (the 403 fallback's page) leaves the edge's cache: MinTTL 1 s, no-cache
        assert fetch(f"{server.url}/build.json", context)[0] == 403
    finally:
        s3.put_bucket_policy(Bucket=BUCKET, Policy=policy)
        s3.delete_object(Bucket=BUCKET, Key="probe.html")
    assert body.startswith(b"<!doctype html>")


def test_two_deploys_and_a_rollback_under_page_loads(deploy, client, edge, tmp_path: Path) -> None:
    server, context = edge
    s3, cf = client("s3"), client("cloudfront")
    (item,) = cf.list_distributions()["DistributionList"]["Items"]
    assets_a = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="assets/")["Contents"]}
    invalidations_before = len(cf.list_invalidations(DistributionId=item["Id"])["InvalidationList"].get("Items") or [])
    stop = threading.Event()
    loads: list[tuple[str, int]] = []

    def loop() -> None:
        deadline = time.monotonic() + 240
        while not stop.is_set() and time.monotonic() < deadline and len(loads) < 20000:
            loads.append(load_page(server.url, context))
            time.sleep(0.02)

    loader = threading.Thread(target=loop)
    loader.start()
    try:
        runs = [
            deploy({"frontend_src": str(make_dist(tmp_path, "b"))}),
            deploy({"frontend_src": str(make_dist(tmp_path, "c"))}),
            deploy({"frontend_rollback": True}),
        ]
        time.sleep(2)  # index.html's TTL at the edge (MinTTL 1 s) passes: the rollback is what loads show
    finally:
        stop.set()
        loader.join(30)
    for r in runs:
        assert r.rc == 0, r.tail()
    failed = sum(f for _, f in loads)
    releases = [rel for rel, _ in loads]
    print(
        f"FIGURE frontend deploy under page loads: {len(loads)} page loads (index.html and its assets) through the "
        f"edge during two deploys and a rollback, {failed} failed asset loads, releases seen {sorted(set(releases))}"
    )
    assert len(loads) >= 20 and failed == 0
    assert {"b", "c"} <= set(releases) and releases[-1] == "b"

    # keep 1: after c, a's assets are gone and b's kept; the rollback to b kept c's (a page may still hold them).
    now_assets = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="assets/")["Contents"]}
    assert not assets_a & now_assets
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key="_releases/manifest.json")["Body"].read())
    # Publish order c, b; b live again; c's files kept (pages loaded during c's minutes still load its assets).
    assert [r["id"] for r in manifest["releases"]][1] == manifest["live"]
    c_assets = [k for k in manifest["releases"][0]["files"] if k.startswith("assets/")]
    assert c_assets and set(c_assets) <= now_assets

    # One invalidation per run, of /index.html only.
    items = cf.list_invalidations(DistributionId=item["Id"])["InvalidationList"]["Items"]
    assert len(items) - invalidations_before == 3
    for inv in items:
        paths = cf.get_invalidation(DistributionId=item["Id"], Id=inv["Id"])["Invalidation"]["InvalidationBatch"]
        assert paths["Paths"]["Items"] in (["/index.html"], ["/probe.html"])

    # keep 1: a is gone, so there is nothing before b to roll back to: refused, nothing changed.
    again = deploy({"frontend_rollback": True})
    assert again.rc != 0 and "no release before the live one" in again.output, again.tail()
    assert json.loads(s3.get_object(Bucket=BUCKET, Key="_releases/manifest.json")["Body"].read()) == manifest

    records = [json.loads(p.read_text()) for p in sorted(deploy.audit.glob("frontend-*.json"))]
    rollback = [r for r in records if r["action"] == "rollback" and r["result"] == "ok"]
    refused = [r for r in records if r["action"] == "rollback" and r["result"] == "failed"]
    assert len(rollback) == 1 and len(refused) == 1 and "no release before the live one" in refused[0]["error"]
    assert rollback[0]["to"] == manifest["live"] and rollback[0]["from"] != rollback[0]["to"] and rollback[0]["who"]


def test_a_domain_with_its_us_east_1_certificate_becomes_the_alias(deploy, client, tmp_path: Path) -> None:
    ca = keys.ca(tmp_path / "ca")
    cert, key = keys.server_cert(ca[0], ca[1], tmp_path / "cert", ["app.example.com"], [])
    arn = client("acm").import_certificate(Certificate=cert.read_bytes(), PrivateKey=key.read_bytes())["CertificateArn"]
    provisioned = deploy({"frontend_domain": "app.example.com", "frontend_src": ""})
    assert provisioned.rc == 0, provisioned.tail()
    cf = client("cloudfront")
    (item,) = cf.list_distributions()["DistributionList"]["Items"]
    config = cf.get_distribution_config(Id=item["Id"])["DistributionConfig"]
    assert config["Aliases"].get("Items") == ["app.example.com"]
    assert config["ViewerCertificate"]["ACMCertificateArn"] == arn
    assert config["ViewerCertificate"]["SSLSupportMethod"] == "sni-only"


def test_teardown_deletes_the_frontend(run: Callable[..., Run], client: Callable) -> None:
    # The lab inventory says provision_frontend: true; nothing else of the lab exists in this file's account.
    down = run("playbooks/teardown.yml", {"teardown_confirm": "lab"}, "--tags", "frontend")
    assert down.rc == 0, down.tail()
    nothing_created(client)
    again = run("playbooks/teardown.yml", {"teardown_confirm": "lab"}, "--tags", "frontend")
    assert again.rc == 0 and again.recap()["localhost"]["changed"] == 0, again.tail()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ab", "3-63 characters"),
        ("a" * 64, "3-63 characters"),
        ("Frontend", "lower-case letters"),
        ("front_end", "lower-case letters"),
        ("-frontend", "start and end"),
        ("front..end", "'..'"),
        ("192.168.5.4", "'..', '.-'|IP address"),
        ("xn--frontend", "xn--"),
        ("frontend-s3alias", "-s3alias"),
        ("ec2-fleet.frontend", "must not hold '.'"),
        ("ec2-fleet-prod-frontend", ""),
    ],
)
def test_bucket_name_rules(name: str, problem: str) -> None:
    from ansible_collections.ec2_fleet.fleet.plugins.filter.frontend_input_errors import bucket_name_problem

    found = bucket_name_problem(name)
    assert (re.search(problem, found) is not None) if problem else found == ""
