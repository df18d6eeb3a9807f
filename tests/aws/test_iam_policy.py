"""docs/iam/ops-box-policy.json: a valid, least-privilege policy that allows every call the playbooks made.

The moto server of this session records every request it answers (api_recorder.py). The playbooks sign with
the lab's access key, the tests' own boto3 checks with another, so the last test here sees exactly what
provision.yml, teardown.yml, site.yml, verify.yml, the aws_ec2 inventory and the alb_target role asked
AWS for during the whole tests/aws session, and checks each call with iam_check.py as IAM would.
conftest.py runs this file last.
"""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from api_recorder import RecordingMotoServer
from iam_check import (
    ACCOUNT,
    ALWAYS_ALLOWED,
    NEW,
    REPORT_KEY,
    S3_PERMISSION_ONLY,
    Authorization,
    Policy,
    authorizations,
)
from provision_helpers import PROVISION_FILES

from ec2_fleet_dev.moto_aws import PLAYBOOK_ACCESS_KEY, ROOT

POLICY_FILE = ROOT / "docs" / "iam" / "ops-box-policy.json"
# The ops box's managed policies: the main one and, as one managed policy holds at most 6,144 characters,
# the access one (the hosts' IAM role, the bastion's and Session Manager's pieces) and the frontend's
# (S3 and CloudFront, playbooks/frontend.yml; attached only where an environment has a frontend).
FRONTEND_POLICY_FILE = ROOT / "docs" / "iam" / "ops-box-frontend-policy.json"
# And the monitoring's (CloudWatch alarms and dashboard, SNS, CloudWatch Logs: roles/aws_monitoring).
MONITORING_POLICY_FILE = ROOT / "docs" / "iam" / "ops-box-monitoring-policy.json"
POLICY_FILES = [
    POLICY_FILE,
    ROOT / "docs" / "iam" / "ops-box-access-policy.json",
    FRONTEND_POLICY_FILE,
    MONITORING_POLICY_FILE,
    # And the images' (bake.yml, roles/aws_image): an image of a project instance, tagged; old ones pruned.
    ROOT / "docs" / "iam" / "ops-box-images-policy.json",
    # And the Auto Scaling group's (roles/aws_asg): its launch template, the group, its hooks and policies.
    ROOT / "docs" / "iam" / "ops-box-asg-policy.json",
]
MONITORING_SERVICES = ("cloudwatch", "sns", "logs")
README = ROOT / "docs" / "iam" / "README.md"
# IAM's size limit of a customer managed policy, whitespace not counted.
MANAGED_POLICY_LIMIT = 6144
# Permissions that are no API operation of their own (S3's: IAM names many differently from the operation).
PERMISSION_ONLY = {"iam:PassRole"} | S3_PERMISSION_ONLY
# The botocore service model of each IAM prefix.
MODELS = {
    "ec2": "ec2",
    "elasticloadbalancing": "elbv2",
    "elasticache": "elasticache",
    "ssm": "ssm",
    "iam": "iam",
    "acm": "acm",
    "s3": "s3",
    "cloudfront": "cloudfront",
    "cloudwatch": "cloudwatch",
    "sns": "sns",
    "logs": "logs",
    "autoscaling": "autoscaling",
}
READ_ONLY = re.compile(r"^[a-z0-9]+:(Describe|List|Get)[A-Za-z]+$")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy([s for path in POLICY_FILES for s in Policy.load(path).statements])


def test_policy_is_a_valid_least_privilege_document(policy: Policy) -> None:
    for path in POLICY_FILES:
        document = json.loads(path.read_text())
        assert document["Version"] == "2012-10-17", path.name
        assert len(re.sub(r"\s", "", path.read_text())) <= MANAGED_POLICY_LIMIT, path.name
    sids = [s["Sid"] for s in policy.statements]
    assert len(sids) == len(set(sids)), sids
    session = botocore.session.get_session()
    operations = {prefix: set(session.get_service_model(model).operation_names) for prefix, model in MODELS.items()}
    for statement in policy.statements:
        assert statement["Effect"] == "Allow", statement["Sid"]
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        for action in actions:
            prefix, name = action.split(":")
            assert "*" not in action, f"{statement['Sid']}: wildcard action {action}"
            assert action in PERMISSION_ONLY or name in operations[prefix], f"{statement['Sid']}: no API {action}"
        # Only reads may name every resource; whatever changes something is scoped by ARN or by tag (a create
        # whose resource has no ARN yet, like acm:RequestCertificate, by the project's tag on the request).
        request_tagged = "aws:RequestTag/Project" in statement.get("Condition", {}).get("StringEquals", {})
        if statement["Resource"] == "*" and not request_tagged:
            assert all(READ_ONLY.match(a) for a in actions), statement["Sid"]


ARN_EC2 = f"arn:aws:ec2:us-east-1:{ACCOUNT}"
ARN_ELB = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
OURS = (("aws:ResourceTag/Project", "ec2-fleet"),)
THEIRS = (("aws:ResourceTag/Project", "payments"),)
ARN_CF = f"arn:aws:cloudfront::{ACCOUNT}"
ARN_CW = f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}"
ARN_CF_NEW = f"{ARN_CF}:distribution/{NEW}"
CF_OURS, CF_THEIRS = OURS, THEIRS

# (allowed, refused): the same call on the project's resource and on someone else's.
SCOPES = [
    # The monitoring (ops-box-monitoring-policy.json): the project's alarms, dashboard, topic and log group.
    (
        Authorization("cloudwatch:PutMetricAlarm", f"{ARN_CW}:alarm:ec2-fleet-lab-alb-5xx-share"),
        Authorization("cloudwatch:PutMetricAlarm", f"{ARN_CW}:alarm:payments-alb-5xx-share"),
    ),
    (
        Authorization("cloudwatch:DeleteAlarms", f"{ARN_CW}:alarm:ec2-fleet-lab-healthy-hosts"),
        Authorization("cloudwatch:DeleteAlarms", f"{ARN_CW}:alarm:billing-healthy-hosts"),
    ),
    (
        Authorization("cloudwatch:DeleteDashboards", f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/ec2-fleet-lab"),
        Authorization("cloudwatch:DeleteDashboards", f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/payments"),
    ),
    (
        Authorization("sns:DeleteTopic", f"arn:aws:sns:us-east-1:{ACCOUNT}:ec2-fleet-lab-alarms"),
        Authorization("sns:DeleteTopic", f"arn:aws:sns:us-east-1:{ACCOUNT}:payments-alarms"),
    ),
    (
        Authorization("sns:Subscribe", f"arn:aws:sns:us-east-1:{ACCOUNT}:ec2-fleet-lab-alarms"),
        Authorization("sns:Subscribe", f"arn:aws:sns:us-east-1:{ACCOUNT}:payments-alarms"),
    ),
    (
        Authorization("logs:DeleteLogGroup", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/ec2-fleet/lab/journal"),
        Authorization("logs:DeleteLogGroup", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/payments/journal"),
    ),
    (
        Authorization("ec2:TerminateInstances", f"{ARN_EC2}:instance/i-0a", OURS),
        Authorization("ec2:TerminateInstances", f"{ARN_EC2}:instance/i-0b", THEIRS),
    ),
    (
        Authorization("ec2:DeleteVpc", f"{ARN_EC2}:vpc/vpc-0a", OURS),
        Authorization("ec2:DeleteVpc", f"{ARN_EC2}:vpc/vpc-0b"),
    ),
    (
        Authorization("ec2:RevokeSecurityGroupIngress", f"{ARN_EC2}:security-group/sg-0a", OURS),
        Authorization("ec2:RevokeSecurityGroupIngress", f"{ARN_EC2}:security-group/sg-0b"),
    ),
    (
        Authorization("ec2:DeleteKeyPair", f"{ARN_EC2}:key-pair/ec2-fleet-lab", OURS),
        Authorization("ec2:DeleteKeyPair", f"{ARN_EC2}:key-pair/deploy-key"),
    ),
    (
        Authorization("ec2:CreateVpc", f"{ARN_EC2}:vpc/{NEW}", (("aws:RequestTag/Project", "ec2-fleet"),)),
        Authorization("ec2:CreateVpc", f"{ARN_EC2}:vpc/{NEW}"),
    ),
    (
        Authorization("ec2:RunInstances", f"{ARN_EC2}:instance/{NEW}", (("aws:RequestTag/Project", "ec2-fleet"),)),
        Authorization("ec2:RunInstances", f"{ARN_EC2}:instance/{NEW}", (("aws:RequestTag/Project", "payments"),)),
    ),
    (
        Authorization(
            "ec2:CreateTags",
            f"{ARN_EC2}:vpc/{NEW}",
            (("aws:RequestTag/Project", "ec2-fleet"), ("ec2:CreateAction", "CreateVpc")),
        ),
        # Tagging someone else's VPC into the project (and so into the playbooks' reach).
        Authorization("ec2:CreateTags", f"{ARN_EC2}:vpc/vpc-0b", (("aws:RequestTag/Project", "ec2-fleet"),)),
    ),
    (
        Authorization("elasticloadbalancing:DeregisterTargets", f"{ARN_ELB}:targetgroup/ec2-fleet-lab-tg/0a"),
        Authorization("elasticloadbalancing:DeregisterTargets", f"{ARN_ELB}:targetgroup/payments-tg/0b"),
    ),
    (
        Authorization("elasticloadbalancing:DeleteLoadBalancer", f"{ARN_ELB}:loadbalancer/app/ec2-fleet-lab/0a"),
        Authorization("elasticloadbalancing:DeleteLoadBalancer", f"{ARN_ELB}:loadbalancer/app/payments/0b"),
    ),
    (
        Authorization(
            "elasticache:DeleteReplicationGroup",
            f"arn:aws:elasticache:us-east-1:{ACCOUNT}:replicationgroup:ec2-fleet-lab",
        ),
        Authorization(
            "elasticache:DeleteReplicationGroup", f"arn:aws:elasticache:us-east-1:{ACCOUNT}:replicationgroup:payments"
        ),
    ),
    (
        Authorization("ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ec2-fleet/lab/database_url"),
        Authorization("ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/payments/database_url"),
    ),
    (
        # The deploy lock may be written; the database URL beside it may not.
        Authorization("ssm:PutParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ec2-fleet/lab/deploy/lock"),
        Authorization("ssm:PutParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ec2-fleet/lab/database_url"),
    ),
    (
        Authorization("acm:RequestCertificate", "*", (("aws:RequestTag/Project", "ec2-fleet"),)),
        Authorization("acm:RequestCertificate", "*", (("aws:RequestTag/Project", "payments"),)),
    ),
    (
        Authorization(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/ec2-fleet-lab-host",
            (("iam:PassedToService", "ec2.amazonaws.com"),),
        ),
        Authorization(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/ec2-fleet-lab-host",
            (("iam:PassedToService", "lambda.amazonaws.com"),),
        ),
    ),
    (
        # The hosts' role gets Session Manager's managed policy, never a broader one (then passed to an instance).
        Authorization(
            "iam:AttachRolePolicy",
            f"arn:aws:iam::{ACCOUNT}:role/ec2-fleet-lab-host",
            (("iam:PolicyARN", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"),),
        ),
        Authorization(
            "iam:AttachRolePolicy",
            f"arn:aws:iam::{ACCOUNT}:role/ec2-fleet-lab-host",
            (("iam:PolicyARN", "arn:aws:iam::aws:policy/AdministratorAccess"),),
        ),
    ),
    (
        Authorization("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/ec2-fleet-lab-host"),
        Authorization("iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/admin"),
    ),
    (
        Authorization("ec2:DeleteVpcEndpoints", f"{ARN_EC2}:vpc-endpoint/vpce-0a", OURS),
        Authorization("ec2:DeleteVpcEndpoints", f"{ARN_EC2}:vpc-endpoint/vpce-0b", THEIRS),
    ),
    (
        Authorization("ssm:StartSession", f"{ARN_EC2}:instance/i-0a", (("ssm:resourceTag/Project", "ec2-fleet"),)),
        Authorization("ssm:StartSession", f"{ARN_EC2}:instance/i-0b", (("ssm:resourceTag/Project", "payments"),)),
    ),
    # The frontend (ops-box-frontend-policy.json): its bucket and objects, its tagged distribution.
    (
        Authorization("s3:PutBucketPolicy", "arn:aws:s3:::ec2-fleet-lab-frontend"),
        Authorization("s3:PutBucketPolicy", "arn:aws:s3:::payments-frontend"),
    ),
    (
        Authorization("s3:DeleteBucket", "arn:aws:s3:::ec2-fleet-production-frontend"),
        Authorization("s3:DeleteBucket", "arn:aws:s3:::ec2-fleet-production-logs"),
    ),
    (
        Authorization("s3:PutObject", "arn:aws:s3:::ec2-fleet-lab-frontend/index.html"),
        Authorization("s3:PutObject", "arn:aws:s3:::payments-frontend/index.html"),
    ),
    (
        Authorization("s3:DeleteObjectVersion", "arn:aws:s3:::ec2-fleet-lab-frontend/assets/index-0a.js"),
        Authorization("s3:DeleteObjectVersion", "arn:aws:s3:::payments-frontend/assets/index-0a.js"),
    ),
    (
        Authorization("cloudfront:CreateDistribution", ARN_CF_NEW, (("aws:RequestTag/Project", "ec2-fleet"),)),
        Authorization("cloudfront:CreateDistribution", ARN_CF_NEW, (("aws:RequestTag/Project", "payments"),)),
    ),
    (
        Authorization("cloudfront:UpdateDistribution", f"{ARN_CF}:distribution/E0A", CF_OURS),
        Authorization("cloudfront:UpdateDistribution", f"{ARN_CF}:distribution/E0B", CF_THEIRS),
    ),
    (
        Authorization("cloudfront:CreateInvalidation", f"{ARN_CF}:distribution/E0A", CF_OURS),
        Authorization("cloudfront:CreateInvalidation", f"{ARN_CF}:distribution/E0B", CF_THEIRS),
    ),
    (
        Authorization("cloudfront:DeleteDistribution", f"{ARN_CF}:distribution/E0A", CF_OURS),
        Authorization("cloudfront:DeleteDistribution", f"{ARN_CF}:distribution/E0B"),
    ),
    (
        # Tags on a new distribution, never someone else's tagged into the project (no CreateAction key here).
        Authorization("cloudfront:TagResource", ARN_CF_NEW, (("aws:RequestTag/Project", "ec2-fleet"),)),
        Authorization(
            "cloudfront:TagResource",
            f"{ARN_CF}:distribution/E0B",
            (("aws:RequestTag/Project", "ec2-fleet"), *CF_THEIRS),
        ),
    ),
    (
        # Tagging someone else's distribution into the project (and so into the playbooks' reach).
        Authorization(
            "cloudfront:TagResource",
            f"{ARN_CF}:distribution/E0A",
            (("aws:RequestTag/Environment", "lab"), *CF_OURS),
        ),
        Authorization(
            "cloudfront:TagResource",
            f"{ARN_CF}:distribution/E0B",
            (("aws:RequestTag/Project", "ec2-fleet"), *CF_THEIRS),
        ),
    ),
]


@pytest.mark.parametrize(("allowed", "refused"), SCOPES, ids=[a.action for a, _ in SCOPES])
def test_policy_reaches_only_the_projects_resources(
    policy: Policy, allowed: Authorization, refused: Authorization
) -> None:
    assert policy.allows(allowed), allowed.describe()
    assert not policy.allows(refused), refused.describe()


def _documented_unused() -> set[str]:
    """The actions README.md lists as granted but called by no test of tests/aws."""
    text = README.read_text()
    section = text.split("## Granted, but not called in tests/aws", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9]+:[A-Za-z]+)` \|", section, flags=re.MULTILINE))


def test_every_call_of_the_frontend_is_allowed(
    policy: Policy, moto_recorder: RecordingMotoServer, request: pytest.FixtureRequest
) -> None:
    """frontend.yml's S3 and CloudFront calls (test_frontend.py: deploys, rollback, check mode, teardown) are
    allowed by the three documents together, the frontend's own in its place."""
    if "test_frontend.py" not in {item.path.name for item in request.session.items}:
        pytest.skip("run with tests/aws/test_frontend.py: its playbook runs make the calls this test checks")
    calls = [c for c in moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY) if c.service in ("s3", "cloudfront")]
    errors = {c.params["__annotate_error"] for c in calls if "__annotate_error" in c.params}
    assert errors == set(), f"the resource tags of some calls could not be read: {errors}"
    unparsed = sorted({c.params["__request"] for c in calls if not c.action})
    assert unparsed == [], f"REST requests the recorder could not name: {unparsed}"
    checked = {auth for call in calls for auth in authorizations(call)}
    refused = sorted(a.describe() for a in checked if not policy.allows(a))
    assert refused == [], "the policy refuses calls frontend.yml makes:\n" + "\n".join(refused)
    called = {a.action for a in checked}
    # The frontend's life really reached the recorder: bucket, upload, distribution, invalidation, delete.
    for needed in (
        "s3:CreateBucket",
        "s3:PutObject",
        "s3:DeleteBucket",
        "cloudfront:CreateDistribution",
        "cloudfront:CreateInvalidation",
        "cloudfront:DeleteDistribution",
    ):
        assert needed in called, f"no {needed} recorded: does frontend.yml reach the session's moto?"
    frontend = Policy.load(FRONTEND_POLICY_FILE)
    own = sorted(
        a.describe() for a in checked if a.action.split(":")[0] in ("s3", "cloudfront") and not frontend.allows(a)
    )
    assert own == [], "S3/CloudFront calls allowed only by another document:\n" + "\n".join(own)
    everything = {a.action.lower() for c in moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY) for a in authorizations(c)}
    unused = sorted(a for a in frontend.actions() if a.lower() not in everything)
    request.config.stash.setdefault(REPORT_KEY, []).extend(
        [
            f"IAM policy check (frontend): {len(calls)} S3/CloudFront calls by frontend.yml, "
            f"{len({c.iam_action for c in calls})} distinct operations, {len(checked)} distinct authorizations, "
            "all allowed by docs/iam/ops-box-frontend-policy.json",
            f"frontend: granted but not called in this session ({len(unused)}): {', '.join(unused)}",
        ]
    )


def test_every_call_of_the_monitoring_is_allowed(
    policy: Policy, moto_recorder: RecordingMotoServer, request: pytest.FixtureRequest
) -> None:
    """roles/aws_monitoring's CloudWatch, SNS and CloudWatch Logs calls (provision.yml, teardown.yml and the
    runs of test_provision_monitoring.py) are allowed by ops-box-monitoring-policy.json alone."""
    if "test_provision_monitoring.py" not in {item.path.name for item in request.session.items}:
        pytest.skip("run with tests/aws/test_provision_monitoring.py: its runs make the calls this test checks")
    calls = [c for c in moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY) if c.service in MONITORING_SERVICES]
    checked = {auth for call in calls for auth in authorizations(call)}
    monitoring = Policy.load(MONITORING_POLICY_FILE)
    refused = sorted(a.describe() for a in checked if not monitoring.allows(a))
    assert refused == [], "ops-box-monitoring-policy.json refuses calls of the monitoring:\n" + "\n".join(refused)
    called = {a.action for a in checked}
    # The monitoring's life really reached the recorder: topic, alarms, dashboard, log group, and their deletion.
    for needed in (
        "sns:CreateTopic",
        "sns:Subscribe",
        "sns:DeleteTopic",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:TagResource",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:PutDashboard",
        "cloudwatch:DeleteDashboards",
        "logs:CreateLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DeleteLogGroup",
    ):
        assert needed in called, f"no {needed} recorded: does the monitoring reach the session's moto?"
    request.config.stash.setdefault(REPORT_KEY, []).append(
        f"IAM policy check (monitoring): {len(calls)} CloudWatch/SNS/Logs calls, "
        f"{len({c.iam_action for c in calls})} distinct operations, {len(checked)} distinct authorizations, "
        "all allowed by docs/iam/ops-box-monitoring-policy.json"
    )


def test_every_call_of_the_playbooks_is_allowed(
    policy: Policy, moto_recorder: RecordingMotoServer, request: pytest.FixtureRequest
) -> None:
    if not {item.path.name for item in request.session.items} >= PROVISION_FILES:
        pytest.skip("run the whole tests/aws: the test_provision_* lifecycle makes the calls this test checks")
    calls = moto_recorder.calls_by(PLAYBOOK_ACCESS_KEY)
    errors = {c.params["__annotate_error"] for c in calls if "__annotate_error" in c.params}
    assert errors == set(), f"the resource tags of some calls could not be read: {errors}"
    checked = {auth for call in calls for auth in authorizations(call)}
    refused = sorted(a.describe() for a in checked if not policy.allows(a))
    assert refused == [], "the policy refuses calls the playbooks make:\n" + "\n".join(refused)

    called = {a.action.lower() for a in checked} | {a.lower() for a in ALWAYS_ALLOWED}
    # The lifecycle really ran: creates, reads and deletes of every service reached the server.
    for needed in ("ec2:runinstances", "ec2:deletevpc", "elasticloadbalancing:registertargets", "ssm:getparameter"):
        assert needed in called, f"no {needed} recorded: is the recorder wired to the playbooks' endpoint?"
    unused = sorted(a for a in policy.actions() if a.lower() not in called)
    assert set(unused) == _documented_unused(), (
        "docs/iam/README.md must list exactly the granted actions no test calls; now: " + ", ".join(unused)
    )
    distinct = sorted({c.iam_action for c in calls})
    request.config.stash[REPORT_KEY] = [
        f"IAM policy check: {len(calls)} AWS calls by the playbooks, {len(distinct)} distinct actions, "
        f"{len(checked)} distinct authorizations, all allowed by docs/iam/ops-box-policy.json",
        f"granted but not called in this session ({len(unused)}): {', '.join(unused)}",
    ]
