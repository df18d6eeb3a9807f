"""api_recorder.parse_request on real boto3 requests: S3 and CloudFront (REST protocols, no Action header).

boto3 signs with an access key of its own here, so the IAM policy test does not count these calls; every
resource made is deleted again (test_frontend.py expects an account without a frontend).
"""

from __future__ import annotations

import io

import boto3
import pytest
from api_recorder import ApiCall, RecordingMotoServer, parse_request
from iam_check import ACCOUNT, NEW, Authorization, annotate, authorizations

from ec2_fleet_dev.moto_aws import REGION

KEY = "api-recorder-test"
BUCKET = "api-recorder-test-bucket"


@pytest.fixture(scope="module")
def boto(moto_url: str):
    def _client(service: str):
        return boto3.session.Session().client(
            service,
            endpoint_url=moto_url,
            region_name=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key="testing",
        )

    return _client


def _calls(recorder: RecordingMotoServer, since: int) -> list[ApiCall]:
    return [c for c in recorder.calls[since:] if c.access_key == KEY]


def test_s3_operations_and_their_iam_actions(boto, moto_recorder: RecordingMotoServer) -> None:
    start = len(moto_recorder.calls)
    s3 = boto("s3")
    s3.create_bucket(Bucket=BUCKET)
    try:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.upload_fileobj(io.BytesIO(b"x"), BUCKET, "assets/a b+c.js")
        s3.head_object(Bucket=BUCKET, Key="assets/a b+c.js")
        s3.copy_object(Bucket=BUCKET, Key="index.html", CopySource={"Bucket": BUCKET, "Key": "assets/a b+c.js"})
        s3.list_objects_v2(Bucket=BUCKET, Prefix="assets/")
        s3.head_bucket(Bucket=BUCKET)
        with pytest.raises(s3.exceptions.ClientError):
            s3.get_bucket_encryption(Bucket="api-recorder-no-such-bucket")
    finally:
        versions = s3.list_object_versions(Bucket=BUCKET).get("Versions", [])
        s3.delete_objects(
            Bucket=BUCKET,
            Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]},
        )
        s3.delete_bucket(Bucket=BUCKET)
    calls = _calls(moto_recorder, start)
    assert [c.action for c in calls] == [
        "CreateBucket",
        "PutBucketVersioning",
        "PutObject",
        "HeadObject",
        "CopyObject",
        "ListObjectsV2",
        "HeadBucket",
        "GetBucketEncryption",
        "ListObjectVersions",
        "DeleteObjects",
        "DeleteBucket",
    ]
    assert {c.service for c in calls} == {"s3"}
    assert calls[7].status == 404  # recorded whatever moto answers
    bucket, obj = f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/assets/a b+c.js"
    by_action = {c.action: authorizations(c) for c in calls}
    assert by_action["CreateBucket"] == [Authorization("s3:CreateBucket", bucket)]
    assert by_action["PutObject"] == [Authorization("s3:PutObject", obj)]
    assert by_action["HeadObject"] == [Authorization("s3:GetObject", obj)]
    assert by_action["CopyObject"] == [
        Authorization("s3:PutObject", f"{bucket}/index.html"),
        Authorization("s3:GetObject", obj),
    ]
    assert by_action["ListObjectsV2"] == [Authorization("s3:ListBucket", bucket)]
    assert by_action["HeadBucket"] == [Authorization("s3:ListBucket", bucket)]
    assert by_action["ListObjectVersions"] == [Authorization("s3:ListBucketVersions", bucket)]
    assert by_action["GetBucketEncryption"] == [
        Authorization("s3:GetEncryptionConfiguration", "arn:aws:s3:::api-recorder-no-such-bucket")
    ]
    # One authorization per object, the version's action as each names a version.
    assert sorted(by_action["DeleteObjects"], key=lambda a: a.resource) == [
        Authorization("s3:DeleteObjectVersion", obj),
        Authorization("s3:DeleteObjectVersion", f"{bucket}/index.html"),
    ]


def test_cloudfront_operations_ids_and_request_tags(boto, client, moto_recorder: RecordingMotoServer) -> None:
    start = len(moto_recorder.calls)
    cf = boto("cloudfront")
    config = {
        "CallerReference": "api-recorder-test",
        "Comment": "",
        "Enabled": False,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "o",
                    "DomainName": f"{BUCKET}.s3.{REGION}.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "o",
            "ViewerProtocolPolicy": "redirect-to-https",
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "MinTTL": 0,
        },
    }
    made = cf.create_distribution_with_tags(
        DistributionConfigWithTags={
            "DistributionConfig": config,
            "Tags": {"Items": [{"Key": "Project", "Value": "ec2-fleet"}, {"Key": "Environment", "Value": "t"}]},
        }
    )["Distribution"]
    dist = made["Id"]
    try:
        cf.create_invalidation(
            DistributionId=dist,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/index.html"]}, "CallerReference": "r1"},
        )
        # The distribution's tags as IAM sees them before the invalidation (aws:ResourceTag), read by annotate
        # (with the checks' own key, as conftest's recorder does).
        invalidation = _calls(moto_recorder, start)[-1]
        assert invalidation.action == "CreateInvalidation"
        assert annotate(invalidation, client) == {"__tags": {"Project": "ec2-fleet", "Environment": "t"}}
        etag = cf.get_distribution_config(Id=dist)["ETag"]
    finally:
        cf.delete_distribution(Id=dist, IfMatch=etag)
    cf.list_distributions()
    calls = _calls(moto_recorder, start)
    assert [c.action for c in calls] == [
        "CreateDistributionWithTags",
        "CreateInvalidation",
        "GetDistributionConfig",
        "DeleteDistribution",
        "ListDistributions",
    ]
    assert {c.service for c in calls} == {"cloudfront"}
    arn = f"arn:aws:cloudfront::{ACCOUNT}:distribution/{dist}"
    tags = (("aws:RequestTag/Environment", "t"), ("aws:RequestTag/Project", "ec2-fleet"))
    assert authorizations(calls[0]) == [
        Authorization("cloudfront:CreateDistribution", f"arn:aws:cloudfront::{ACCOUNT}:distribution/{NEW}", tags),
        Authorization("cloudfront:TagResource", f"arn:aws:cloudfront::{ACCOUNT}:distribution/{NEW}", tags),
    ]
    assert [a.resource for c in calls[1:4] for a in authorizations(c)] == [arn] * 3
    assert authorizations(calls[4]) == [Authorization("cloudfront:ListDistributions", "*")]


def _environ(method: str, path: str, query: str = "", host: str = "127.0.0.1:5000", **headers: str) -> dict:
    auth = f"AWS4-HMAC-SHA256 Credential={KEY}/20261203/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_HOST": host,
        "HTTP_AUTHORIZATION": auth,
        **headers,
    }


@pytest.mark.parametrize(
    ("environ", "action", "params"),
    [
        # Virtual-hosted style (the bucket in the Host header), as boto3 sends it to a named S3 endpoint.
        (_environ("GET", "/", "list-type=2", host="b1.s3.us-east-1.amazonaws.com"), "ListObjectsV2", {"Bucket": "b1"}),
        (_environ("PUT", "/k/x.js", host="b1.localhost:5000"), "PutObject", {"Bucket": "b1", "Key": "k/x.js"}),
        # The most literal query keys win: ?versions is ListObjectVersions, not ListObjects.
        (_environ("GET", "/b1", "versions&prefix=a"), "ListObjectVersions", {"Bucket": "b1"}),
        (_environ("GET", "/b1", "encryption"), "GetBucketEncryption", {"Bucket": "b1"}),
        (_environ("GET", "/b1"), "ListObjects", {"Bucket": "b1"}),
        (_environ("GET", "/b1/k", "versionId=3"), "GetObject", {"Bucket": "b1", "Key": "k", "versionId": "3"}),
    ],
)
def test_parse_request_addressing_and_specificity(environ: dict, action: str, params: dict) -> None:
    call = parse_request(environ, b"")
    assert call is not None
    assert call.action == action
    assert {k: v for k, v in call.params.items() if k in params} == params


def test_a_versioned_get_needs_get_object_version() -> None:
    call = parse_request(_environ("GET", "/b1/k", "versionId=3"), b"")
    assert call is not None
    assert authorizations(call) == [Authorization("s3:GetObjectVersion", "arn:aws:s3:::b1/k")]
