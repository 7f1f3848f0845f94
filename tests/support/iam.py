"""Least privilege: every S3 call a client makes (a botocore event hook), the IAM actions and
resources each needs, and the policy the docs publish (parsed from docs/security.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

POLICY_DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
MARKER = "<!-- least-privilege policy:"

# the IAM action each S3 API operation needs (AWS's Service Authorization Reference)
BUCKET_ACTIONS = {
    "HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
}
KMS_ACTIONS = ("GenerateDataKey", "Decrypt")  # the IAM action is the operation's name
OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject", "AbortMultipartUpload": "s3:AbortMultipartUpload",
}


@dataclass(frozen=True)
class Need:
    """One permission a call needs: an action on a resource ARN."""

    action: str
    resource: str


@dataclass
class CallLog:
    """Records the operation and parameters of every call of the clients it is attached to."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    kms_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def attach(self, client: Any) -> Any:
        """Record the calls of an ``s3`` or a ``kms`` client (client-side encryption's)."""
        service = client.meta.service_model.service_name
        calls = {"s3": self.calls, "kms": self.kms_calls}[service]

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, dict(params)))  # None: the params go on as they are

        client.meta.events.register(f"provide-client-params.{service}.*", record)
        return client

    @property
    def operations(self) -> set[str]:
        return {name for name, _ in self.calls}

    def needs(self) -> set[Need]:
        """The permissions of every recorded call, KMS included: S3 asks KMS for a data key
        on each SSE-KMS write and to decrypt on each read of such an object (and on a
        multipart upload, to put the parts together)."""
        needs: set[Need] = set()
        kms_keys: dict[tuple[str, str], str] = {}
        for name, params in self.calls:
            bucket, key = params["Bucket"], params.get("Key", "")
            needs |= _s3_needs(name, params, bucket, key)
            kms = params.get("SSEKMSKeyId")
            if kms:
                kms_keys[(bucket, key)] = kms
                needs.add(Need("kms:GenerateDataKey", kms))
                if name == "CreateMultipartUpload":
                    needs.add(Need("kms:Decrypt", kms))
            elif name == "GetObject" and (bucket, key) in kms_keys:
                needs.add(Need("kms:Decrypt", kms_keys[(bucket, key)]))
        for name, params in self.kms_calls:  # client-side: the workers' own KMS calls
            if name not in KMS_ACTIONS:
                raise AssertionError(f"KMS operation {name} has no IAM action here: add it to "
                                     "tests/support/iam.py and, if the code needs it, to the "
                                     "policy in docs/security.md")
            needs.add(Need(f"kms:{name}", str(params["KeyId"])))
        return needs


def _s3_needs(name: str, params: dict[str, Any], bucket: str, key: str) -> set[Need]:
    if name in BUCKET_ACTIONS:
        return {Need(BUCKET_ACTIONS[name], f"arn:aws:s3:::{bucket}")}
    if name == "DeleteObjects":
        return {Need("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                     f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]}
    if name not in OBJECT_ACTIONS:
        raise AssertionError(f"S3 operation {name} has no IAM action here: add it to "
                             "tests/support/iam.py and, if the code needs it, to the policy in "
                             "docs/security.md")
    arn = f"arn:aws:s3:::{bucket}/{key}"
    needs = {Need(OBJECT_ACTIONS[name], arn)}
    if name == "HeadObject":  # the lock headers are only returned with these two
        needs |= {Need("s3:GetObjectRetention", arn), Need("s3:GetObjectLegalHold", arn)}
    if params.get("ObjectLockMode"):
        needs.add(Need("s3:PutObjectRetention", arn))
    return needs


def published_policy() -> dict[str, Any]:
    """The JSON policy block that follows the marker in docs/security.md."""
    text = POLICY_DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r".*?```json\n(.*?)```", text, re.S)
    if found is None:
        raise AssertionError(f"{POLICY_DOC} has no policy block after {MARKER!r}")
    return dict(json.loads(found.group(1)))


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(policy: dict[str, Any], need: Need, kms_keys: Collection[str] = ()) -> bool:
    """Whether an Allow statement of ``policy`` grants ``need`` (``*`` wildcards; a KMS need
    on one of ``kms_keys`` is matched as if on the policy's key ARN)."""
    resource = "*KMS*" if need.action.startswith("kms:") and need.resource in kms_keys \
        else need.resource
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow" or need.action not in _listed(statement["Action"]):
            continue
        patterns = _listed(statement["Resource"])
        if resource == "*KMS*" and any(p.startswith("arn:aws:kms:") for p in patterns):
            return True
        if any(fnmatchcase(resource, p) for p in patterns):
            return True
    return False


def actions_of(policy: dict[str, Any]) -> set[str]:
    return {a for statement in policy["Statement"] for a in _listed(statement["Action"])}
