#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Request (once) a public ACM certificate for a domain with DNS validation, and report its status
and the DNS record that validates it.

community.aws.acm_certificate only imports certificates: this module requests one.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_alb_acm_certificate
short_description: Request a public ACM certificate validated through DNS, or find the one requested before
description:
  - Looks for an Amazon-issued certificate of I(domain_name) that is pending validation or issued; requests one
    (validation method DNS) only when there is none, so a second run reports no change.
  - Returns the certificate's status and the CNAME record(s) whose creation in the domain's DNS zone validates it.
    Right after a request ACM takes a few seconds to publish the record, and the module waits for it (bounded).
options:
  domain_name:
    description: Fully qualified domain name of the certificate (for example C(shop.example.com)).
    type: str
    required: true
  tags:
    description: Tags of a newly requested certificate.
    type: dict
    default: {}
  record_timeout:
    description: Seconds to wait for ACM to publish the validation record of a new request.
    type: int
    default: 60
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
author: ec2-fleet contributors
"""

EXAMPLES = r"""
- name: Request the certificate of the shop's domain
  ec2_fleet.fleet.aws_alb_acm_certificate:
    domain_name: shop.example.com
    tags: {Project: ec2-fleet, Environment: production}
  register: cert
"""

RETURN = r"""
certificate_arn:
  description: ARN of the certificate; empty in check mode when it would be requested.
  returned: always
  type: str
status:
  description: ACM status (PENDING_VALIDATION, ISSUED, ...), or C(NOT_REQUESTED) in check mode.
  returned: always
  type: str
validation_records:
  description: The DNS records that validate the certificate (domain, name, type, value).
  returned: always
  type: list
  elements: dict
"""

import hashlib  # noqa: E402
import time  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

USABLE = ["PENDING_VALIDATION", "ISSUED"]


def _records(certificate: dict) -> list[dict]:
    return [
        {
            "domain": option["DomainName"],
            "name": option["ResourceRecord"]["Name"],
            "type": option["ResourceRecord"]["Type"],
            "value": option["ResourceRecord"]["Value"],
        }
        for option in certificate.get("DomainValidationOptions", [])
        if option.get("ResourceRecord")
    ]


def _find(client, domain: str) -> dict | None:
    """The newest Amazon-issued certificate of domain that is pending validation or issued."""
    found = []
    paginator = client.get_paginator("list_certificates")
    for page in paginator.paginate(CertificateStatuses=USABLE):
        for summary in page["CertificateSummaryList"]:
            if summary.get("DomainName") != domain:
                continue
            cert = client.describe_certificate(CertificateArn=summary["CertificateArn"])["Certificate"]
            if cert.get("Type") == "AMAZON_ISSUED" and cert.get("Status") in USABLE:
                found.append(cert)
    # Issued first, then the newest request.
    found.sort(key=lambda c: (c["Status"] == "ISSUED", str(c.get("CreatedAt", ""))), reverse=True)
    return found[0] if found else None


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "domain_name": {"type": "str", "required": True},
            "tags": {"type": "dict", "default": {}},
            "record_timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    client = module.client("acm")
    domain = module.params["domain_name"]
    try:
        cert = _find(client, domain)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"Unable to list the ACM certificates of {domain}")
    if cert is None and module.check_mode:
        module.exit_json(changed=True, certificate_arn="", status="NOT_REQUESTED", validation_records=[])
    changed = False
    if cert is None:
        token = hashlib.sha256(domain.encode()).hexdigest()[:32]  # a retried request within an hour is the same one
        tags = [{"Key": k, "Value": str(v)} for k, v in module.params["tags"].items()]
        try:
            arn = client.request_certificate(
                DomainName=domain, ValidationMethod="DNS", IdempotencyToken=token, **({"Tags": tags} if tags else {})
            )["CertificateArn"]
            deadline = time.monotonic() + module.params["record_timeout"]
            while True:
                cert = client.describe_certificate(CertificateArn=arn)["Certificate"]
                if _records(cert) or time.monotonic() > deadline:
                    break
                time.sleep(2)
        except aws_errors() as e:
            module.fail_json_aws(e, msg=f"Unable to request an ACM certificate for {domain}")
        changed = True
    module.exit_json(
        changed=changed,
        certificate_arn=cert["CertificateArn"],
        status=cert["Status"],
        validation_records=_records(cert),
    )


if __name__ == "__main__":
    main()
