#!/usr/bin/python
# Copyright: ec2-fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publish a built single-page app to S3 in one run, in the order that never breaks an open page."""

from __future__ import annotations

DOCUMENTATION = r"""
module: frontend_publish
short_description: Publish a frontend build to S3 as a release (assets first, index.html last), or roll back
description:
  - V(published) makes the build in O(src) the live release of O(bucket). The release id is O(release), or
    else the first 12 hex digits of a SHA-256 over the build's files (the same build gives the same id).
    In one run, in this order, each file uploaded only when S3 lacks it or holds other bytes (its ETag, the MD5
    of a single-part upload, differs) -
  - 1. every file but C(index.html); the hashed assets (under C(assets/)) with
    C(Cache-Control) O(immutable_cache_control), the others with O(index_cache_control);
  - 2. a copy of the release's C(index.html) under C(_releases/ID/index.html) (what a rollback republishes);
  - 3. C(index.html) itself, with O(index_cache_control); from here on new page loads get the new release;
  - 4. the manifest C(_releases/manifest.json) (the live release, the kept releases, newest first, and each
    one's files);
  - 5. the files of the releases older than the newest O(keep_releases) + 1 (in publish order; the live one and
    every newer one always stay), unless a kept release still uses them.
  - V(rolled_back) republishes the C(index.html) of the release published before the live one (its assets are
    still in the bucket) and records it as live in the manifest; the release rolled back from keeps its files, and
    a second rollback goes one release further back. It fails, changing nothing, when the manifest
    holds no earlier release.
  - RV(index_changed) says whether C(index.html) changed, that is whether CloudFront's copy must be
    invalidated (community.aws.cloudfront_invalidation, path C(/index.html) only).
  - Check mode computes the same plan and writes nothing; C(--diff) shows the live release before and after.
  - In the collection's action group C(ec2_fleet.fleet.aws).
options:
  bucket:
    description: The S3 bucket.
    type: str
    required: true
  src:
    description: The build directory (with C(index.html) at its top). Required with V(published).
    type: path
  release:
    description: The release id; empty for the build's content hash.
    type: str
    default: ""
  keep_releases:
    description: How many releases besides the newest keep their files in the bucket (the live release and any
      newer one always do).
    type: int
    default: 3
  immutable_cache_control:
    description: The C(Cache-Control) of the hashed assets.
    type: str
    default: public, max-age=31536000, immutable
  index_cache_control:
    description: The C(Cache-Control) of C(index.html) and of the build's other unhashed files.
    type: str
    default: no-cache
  state:
    description: V(published) or V(rolled_back).
    type: str
    choices: [published, rolled_back]
    default: published
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Publish the frontend build
  ec2_fleet.fleet.frontend_publish:
    bucket: ec2-fleet-prod-frontend
    src: /srv/build/frontend/dist
    keep_releases: 3
"""

RETURN = r"""
release:
  description: The live release after the run.
  returned: always
  type: str
previous:
  description: The live release before the run (empty on the first publish).
  returned: always
  type: str
uploaded:
  description: The keys written, in the order they were written.
  returned: always
  type: list
  elements: str
deleted:
  description: The keys of pruned releases deleted.
  returned: always
  type: list
  elements: str
kept:
  description: The releases whose files are in the bucket after the run, newest first.
  returned: always
  type: list
  elements: str
index_changed:
  description: Whether index.html changed (CloudFront's copy must be invalidated).
  returned: always
  type: bool
"""

import hashlib  # noqa: E402
import json  # noqa: E402
import mimetypes  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code  # noqa: E402
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule  # noqa: E402
from ansible_collections.ec2_fleet.fleet.plugins.module_utils.fleet_aws import aws_errors  # noqa: E402

MANIFEST = "_releases/manifest.json"
INDEX = "index.html"
TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".html": "text/html",
    ".map": "application/json",
    ".woff2": "font/woff2",
}


def read_build(src: str) -> dict[str, bytes]:
    """Every file of the build, by its key (a path relative to src with '/')."""
    files = {}
    for root, dirs, names in os.walk(src):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            key = os.path.relpath(path, src).replace(os.sep, "/")
            with open(path, "rb") as f:
                files[key] = f.read()
    return files


def release_id(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for key in sorted(files):
        digest.update(key.encode() + b"\0" + hashlib.sha256(files[key]).digest())
    return digest.hexdigest()[:12]


def content_type(key: str) -> str:
    ext = os.path.splitext(key)[1].lower()
    return TYPES.get(ext) or mimetypes.guess_type(key)[0] or "application/octet-stream"


class Bucket:
    def __init__(self, module: Any, client: Any, name: str) -> None:
        self.module, self.client, self.name = module, client, name
        self.uploaded: list[str] = []

    def etags(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.missing():
            return found
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj["ETag"].strip('"')
        return found

    def missing(self) -> bool:
        """A bucket not made yet: only in check mode on a new account (the role creates it before)."""
        if not self.module.check_mode:
            return False
        try:
            self.client.head_bucket(Bucket=self.name)
        except is_boto3_error_code(["NoSuchBucket", "404"]):
            return True
        return False

    def manifest(self) -> dict:
        if self.missing():
            return {"live": "", "releases": []}
        try:
            body = self.client.get_object(Bucket=self.name, Key=MANIFEST)["Body"].read()
        except is_boto3_error_code(["NoSuchKey", "404"]):
            return {"live": "", "releases": []}
        return json.loads(body)

    def put(self, key: str, body: bytes, cache_control: str, ctype: str | None = None) -> None:
        self.uploaded.append(key)
        if not self.module.check_mode:
            self.client.put_object(
                Bucket=self.name,
                Key=key,
                Body=body,
                CacheControl=cache_control,
                ContentType=ctype or content_type(key),
            )

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def delete(self, keys: list[str]) -> None:
        if self.module.check_mode:
            return
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.client.delete_objects(Bucket=self.name, Delete={"Objects": [{"Key": k} for k in chunk]})


def md5(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()  # S3 ETag of a single-part upload


def release_keys(release: dict) -> set[str]:
    return set(release["files"]) | {f"_releases/{release['id']}/{INDEX}"}


def publish(module: Any, bucket: Bucket) -> dict:
    p = module.params
    if not p["src"] or not os.path.isfile(os.path.join(p["src"], INDEX)):
        module.fail_json(
            msg=f"frontend_publish: src must be a build directory with {INDEX} at its top (got {p['src']!r})"
        )
    files = read_build(p["src"])
    rid = p["release"] or release_id(files)
    manifest, etags = bucket.manifest(), bucket.etags()
    previous = manifest.get("live", "")
    index = files[INDEX]
    index_changed = etags.get(INDEX) != md5(index)
    for key in sorted(k for k in files if k != INDEX):
        if etags.get(key) != md5(files[key]):
            hashed = key.startswith("assets/")
            bucket.put(key, files[key], p["immutable_cache_control"] if hashed else p["index_cache_control"])
    copy = f"_releases/{rid}/{INDEX}"
    if etags.get(copy) != md5(index):
        bucket.put(copy, index, p["index_cache_control"], "text/html")
    if index_changed:
        bucket.put(INDEX, index, p["index_cache_control"], "text/html")
    entry = {"id": rid, "files": sorted(files)}
    releases = [entry] + [r for r in manifest.get("releases", []) if r["id"] != rid]
    return finish(module, bucket, manifest, releases, rid, previous, index_changed)


def roll_back(module: Any, bucket: Bucket) -> dict:
    manifest = bucket.manifest()
    live, releases = manifest.get("live", ""), manifest.get("releases", [])
    ids = [r["id"] for r in releases]
    older = ids[ids.index(live) + 1 :] if live in ids else []
    if not older:
        module.fail_json(
            msg=f"frontend_publish: no release before the live one ('{live}') to roll back to in bucket "
            f"{bucket.name} (kept: {ids})"
        )
    target = older[0]
    index = bucket.get(f"_releases/{target}/{INDEX}")
    bucket.put(INDEX, index, module.params["index_cache_control"], "text/html")
    # The list stays in publish order: the rolled-back release keeps its files (a page still open on it loads its
    # assets), and a second rollback goes one release further back.
    return finish(module, bucket, manifest, releases, target, live, True)


def finish(
    module: Any, bucket: Bucket, manifest: dict, releases: list[dict], live: str, previous: str, index_changed: bool
) -> dict:
    # The newest keep_releases + 1 releases (publish order), and at least up to the live one.
    ids = [r["id"] for r in releases]
    keep = releases[: max(module.params["keep_releases"] + 1, ids.index(live) + 1 if live in ids else 0)]
    dropped = releases[len(keep) :]
    still = set().union(*(release_keys(r) for r in keep)) if keep else set()
    doomed = sorted(set().union(*(release_keys(r) for r in dropped)) - still) if dropped else []
    new_manifest = {"live": live, "releases": keep}
    changed = (
        bool(bucket.uploaded)
        or new_manifest["live"] != manifest.get("live")
        or [r["id"] for r in keep] != [r["id"] for r in manifest.get("releases", [])]
        or bool(doomed)
    )
    if changed:
        record = {**new_manifest, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        bucket.put(MANIFEST, json.dumps(record, indent=1).encode(), "no-cache", "application/json")
    # Only now, with the new index.html live, the files no kept release uses.
    existing = bucket.etags() if doomed and not module.check_mode else {}
    doomed = [k for k in doomed if k in existing or module.check_mode]
    bucket.delete(doomed)
    return {
        "changed": changed,
        "release": live,
        "previous": previous,
        "uploaded": bucket.uploaded,
        "deleted": doomed,
        "kept": [r["id"] for r in keep],
        "index_changed": index_changed,
        "diff": {"before": {"live": previous}, "after": {"live": live}},
    }


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "bucket": {"type": "str", "required": True},
            "src": {"type": "path"},
            "release": {"type": "str", "default": ""},
            "keep_releases": {"type": "int", "default": 3},
            "immutable_cache_control": {"type": "str", "default": "public, max-age=31536000, immutable"},
            "index_cache_control": {"type": "str", "default": "no-cache"},
            "state": {"type": "str", "choices": ["published", "rolled_back"], "default": "published"},
        },
        required_if=[("state", "published", ["src"])],
        supports_check_mode=True,
    )
    bucket = Bucket(module, module.client("s3"), module.params["bucket"])
    try:
        result = publish(module, bucket) if module.params["state"] == "published" else roll_back(module, bucket)
    except aws_errors() as e:
        module.fail_json_aws(e, msg=f"frontend_publish: bucket {module.params['bucket']}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
