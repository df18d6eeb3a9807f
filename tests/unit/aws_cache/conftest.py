"""Fixtures for the aws_cache tests: one moto server on 127.0.0.1, emptied before every test."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from aws_cache_support import REGION

from ec2_fleet_dev.plays import free_port, moto_server


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def moto(moto_url: str) -> str:
    """The moto server's URL, with every resource of earlier tests removed."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_url


@pytest.fixture
def closed_url() -> str:
    """An endpoint where nothing listens: any AWS call made against it fails."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def aws(moto: str):
    """boto3 clients on the moto server, to set things up and to see what the code under test did."""
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=moto,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture
def subnets(aws) -> list[str]:
    """Two subnets of one VPC, in two Availability Zones."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]
