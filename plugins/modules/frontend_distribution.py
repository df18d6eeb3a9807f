#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The frontend's CloudFront distribution: an S3 origin behind an origin access control.

community.aws.cloudfront_distribution (10.0.0) has no option for an origin access control (only the legacy
origin access identity) and no check mode, so the role cannot use it for this distribution."""

from __future__ import annotations

DOCUMENTATION = r"""
module: frontend_distribution
short_description: Create, update or delete the CloudFront distribution of a single-page app in S3 (with OAC)
description:
  - One distribution per O(caller_reference), with a single S3 origin (O(bucket) in O(bucket_region)) signed by
    the origin access control O(oac_id); default root object C(index.html); the SPA fallback (403 and 404 from
    the origin answered with C(/index.html) and 200); viewers redirected to HTTPS; compression on, no cookies,
    headers or query strings in the cache key (as the managed CachingOptimized policy) with the TTLs given.
  - With O(aliases) and O(certificate_arn) (an ACM certificate in us-east-1) it serves those names with SNI and
    TLS 1.2 at least; without, the distribution's own C(*.cloudfront.net) name and certificate.
  - Only the settings above are compared, so a second run with the same inputs changes nothing. Check mode
    reports what would change; C(--diff) shows the compared settings.
  - V(absent) disables the distribution, and deletes it once it is disabled and deployed (with O(wait)).
  - In the collection's action group C(ec2_fleet.fleet.aws).
options:
  caller_reference:
    description: The distribution's identity (unique in the account), for example the bucket's name.
    type: str
    required: true
  bucket:
    description: The origin's S3 bucket.
    type: str
    required: true
  bucket_region:
    description: The bucket's region.
    type: str
    required: true
  oac_id:
    description: The origin access control's id (ec2_fleet.fleet.frontend_oac). Required with V(present).
    type: str
    default: ""
  comment:
    description: The distribution's comment.
    type: str
    default: ""
  aliases:
    description: Domain names served (CNAMEs); they need O(certificate_arn).
    type: list
    elements: str
    default: []
  certificate_arn:
    description: ACM certificate (us-east-1) for O(aliases).
    type: str
    default: ""
  price_class:
    description: CloudFront's price class.
    type: str
    default: PriceClass_100
  min_ttl:
    description: Seconds CloudFront keeps an object at least.
    type: int
    default: 1
  default_ttl:
    description: Seconds CloudFront keeps an object that sets no max-age.
    type: int
    default: 86400
  max_ttl:
    description: Seconds CloudFront keeps an object at most.
    type: int
    default: 31536000
  error_caching_min_ttl:
    description: Seconds CloudFront keeps the SPA fallback's answer to a 403/404.
    type: int
    default: 10
  tags:
    description: The distribution's tags (all of them).
    type: dict
    default: {}
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Create the frontend's distribution
  ec2_fleet.fleet.frontend_distribution:
    caller_reference: ec2-fleet-prod-frontend
    bucket: ec2-fleet-prod-frontend
    bucket_region: eu-west-1
    oac_id: E2QWRUHAPOMQZL
    tags: {Project: ec2-fleet, Environment: prod}
"""

RETURN = r"""
distribution:
  description: The distribution (C(id), C(arn), C(domain_name), C(status)); empty when absent or in check mode
    before its creation.
  returned: always
  type: dict
"""

from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

ORIGIN_ID = "s3-frontend"


def find(client: Any, caller_reference: str) -> tuple[dict, str] | None:
    """The distribution's config and ETag, found by its caller reference."""
    for page in client.get_paginator("list_distributions").paginate():
        for item in page.get("DistributionList", {}).get("Items") or []:
            got = client.get_distribution_config(Id=item["Id"])
            if got["DistributionConfig"]["CallerReference"] == caller_reference:
                return {**item, "DistributionConfig": got["DistributionConfig"]}, got["ETag"]
    return None


def wanted_config(p: dict) -> dict:
    aliases = sorted(p["aliases"])
    if p["certificate_arn"]:
        certificate = {
            "ACMCertificateArn": p["certificate_arn"],
            "SSLSupportMethod": "sni-only",
            "MinimumProtocolVersion": "TLSv1.2_2021",
            "CloudFrontDefaultCertificate": False,
        }
    else:
        certificate = {"CloudFrontDefaultCertificate": True}
    errors = [
        {
            "ErrorCode": code,
            "ResponsePagePath": "/index.html",
            "ResponseCode": "200",
            "ErrorCachingMinTTL": p["error_caching_min_ttl"],
        }
        for code in (403, 404)
    ]
    return {
        "CallerReference": p["caller_reference"],
        "Comment": p["comment"],
        "Enabled": True,
        "DefaultRootObject": "index.html",
        "PriceClass": p["price_class"],
        "HttpVersion": "http2",
        "IsIPV6Enabled": True,
        "Aliases": {"Quantity": len(aliases), **({"Items": aliases} if aliases else {})},
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": ORIGIN_ID,
                    "DomainName": f"{p['bucket']}.s3.{p['bucket_region']}.amazonaws.com",
                    "OriginPath": "",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                    "OriginAccessControlId": p["oac_id"],
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": ORIGIN_ID,
            "ViewerProtocolPolicy": "redirect-to-https",
            "AllowedMethods": {
                "Quantity": 2,
                "Items": ["GET", "HEAD"],
                "CachedMethods": {"Quantity": 2, "Items": ["GET", "HEAD"]},
            },
            "Compress": True,
            "ForwardedValues": {
                "QueryString": False,
                "Cookies": {"Forward": "none"},
                "Headers": {"Quantity": 0},
                "QueryStringCacheKeys": {"Quantity": 0},
            },
            "MinTTL": p["min_ttl"],
            "DefaultTTL": p["default_ttl"],
            "MaxTTL": p["max_ttl"],
        },
        "CustomErrorResponses": {"Quantity": len(errors), "Items": errors},
        "ViewerCertificate": certificate,
    }


def compared(config: dict) -> dict:
    """The settings this module manages, as comparable values."""
    origin = (config.get("Origins", {}).get("Items") or [{}])[0]
    behaviour = config.get("DefaultCacheBehavior", {})
    cert = config.get("ViewerCertificate", {})
    return {
        "comment": config.get("Comment", ""),
        "enabled": bool(config.get("Enabled")),
        "default_root_object": config.get("DefaultRootObject", ""),
        "price_class": config.get("PriceClass", ""),
        "aliases": sorted(config.get("Aliases", {}).get("Items") or []),
        "origin_domain": origin.get("DomainName", ""),
        "origin_access_control_id": origin.get("OriginAccessControlId", ""),
        "viewer_protocol_policy": behaviour.get("ViewerProtocolPolicy", ""),
        "compress": bool(behaviour.get("Compress")),
        "ttl": [int(behaviour.get(k) or 0) for k in ("MinTTL", "DefaultTTL", "MaxTTL")],
        "error_responses": sorted(
            (
                int(e["ErrorCode"]),
                e.get("ResponsePagePath", ""),
                str(e.get("ResponseCode", "")),
                int(e.get("ErrorCachingMinTTL") or 0),
            )
            for e in config.get("CustomErrorResponses", {}).get("Items") or []
        ),
        "certificate_arn": cert.get("ACMCertificateArn", "") or "",
    }


def summary(item: dict) -> dict:
    return {"id": item["Id"], "arn": item["ARN"], "domain_name": item["DomainName"], "status": item.get("Status", "")}


def run(module: Any, client: Any) -> dict:
    p = module.params
    found = find(client, p["caller_reference"])
    if p["state"] == "absent":
        if found is None:
            return {"changed": False, "distribution": {}}
        item, etag = found
        if not module.check_mode:
            config = item["DistributionConfig"]
            if config.get("Enabled"):
                config["Enabled"] = False
                etag = client.update_distribution(Id=item["Id"], IfMatch=etag, DistributionConfig=config)["ETag"]
            client.delete_distribution(Id=item["Id"], IfMatch=etag)
        return {"changed": True, "distribution": {}, "diff": {"before": {"id": item["Id"]}, "after": {}}}
    if not p["oac_id"] and not module.check_mode:
        module.fail_json(msg="frontend_distribution: oac_id is required with state present")
    wanted = wanted_config(p)
    tags = [{"Key": k, "Value": str(v)} for k, v in sorted(p["tags"].items())]
    if found is None:
        diff = {"before": {}, "after": compared(wanted)}
        if module.check_mode:
            return {"changed": True, "distribution": {}, "diff": diff}
        made = client.create_distribution_with_tags(
            DistributionConfigWithTags={"DistributionConfig": wanted, "Tags": {"Items": tags}}
        )["Distribution"]
        return {"changed": True, "distribution": summary(made), "diff": diff}
    item, etag = found
    current = item["DistributionConfig"]
    changed = False
    diff = {"before": compared(current), "after": compared(wanted)}
    if diff["before"] != diff["after"]:
        changed = True
        if not module.check_mode:
            client.update_distribution(Id=item["Id"], IfMatch=etag, DistributionConfig={**current, **wanted})
    have_tags = {
        t["Key"]: t["Value"] for t in client.list_tags_for_resource(Resource=item["ARN"])["Tags"].get("Items") or []
    }
    want_tags = {k: str(v) for k, v in p["tags"].items()}
    if have_tags != want_tags:
        changed = True
        diff["before"]["tags"], diff["after"]["tags"] = have_tags, want_tags
        if not module.check_mode:
            stale = [k for k in have_tags if k not in want_tags]
            if stale:
                client.untag_resource(Resource=item["ARN"], TagKeys={"Items": stale})
            client.tag_resource(Resource=item["ARN"], Tags={"Items": tags})
    return {"changed": changed, "distribution": summary(item), "diff": diff}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "caller_reference": {"type": "str", "required": True},
            "bucket": {"type": "str", "required": True},
            "bucket_region": {"type": "str", "required": True},
            "oac_id": {"type": "str", "default": ""},
            "comment": {"type": "str", "default": ""},
            "aliases": {"type": "list", "elements": "str", "default": []},
            "certificate_arn": {"type": "str", "default": ""},
            "price_class": {"type": "str", "default": "PriceClass_100"},
            "min_ttl": {"type": "int", "default": 1},
            "default_ttl": {"type": "int", "default": 86400},
            "max_ttl": {"type": "int", "default": 31536000},
            "error_caching_min_ttl": {"type": "int", "default": 10},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    client = module.client("cloudfront")
    try:
        result = run(module, client)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"frontend_distribution {module.params['caller_reference']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
