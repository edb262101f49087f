"""Stores on object storage (`s3://`, `gs://`, `az://`, `s3+ddb://`): how to reach them, the
writer lease that keeps one writer across machines, and the probe that the bucket honours
conditional writes.

Credentials come from where the cloud SDKs look: the standard AWS environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL,
AWS_ALLOW_HTTP), an AWS profile (AWS_PROFILE), and `MMSEARCH_STORAGE_OPTIONS` (a JSON object
of LanceDB storage options) for anything else. Secret values never reach a message: every
error text from this module and the store passes through `redact` (mmsearch.core.redact),
as every message of mmsearch does.

One writer on `s3://`: a lease object, `<store>/_mmsearch/writer.lease`, created with a
conditional PUT (If-None-Match: *), renewed by its holder every `ttl/4` seconds with a PUT
conditional on its own ETag (If-Match), and taken over by another writer only once the
server's clock says it has not been renewed for `ttl` seconds, again by If-Match on the
stale ETag, so of two writers racing for an expired lease exactly one wins. A store that
ignores those headers would let two writers in (and lose Lance's own commits, which rely on
the same header): the first write to a bucket from this machine probes it and refuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmsearch.core.config import cache_root
from mmsearch.core.errors import StoreBusy, StoreError, UsageError, one_line
from mmsearch.core.redact import STORAGE_OPTIONS, redact

ENV_OPTIONS = STORAGE_OPTIONS
ENV_TTL = "MMSEARCH_LEASE_SECONDS"
DEFAULT_TTL = 60.0
LEASE_KEY = "_mmsearch/writer.lease"
PROBE_PREFIX = "_mmsearch/probe-"
PROBED = "probed.json"  # under cache_root()/remote: buckets this machine found sound


def scheme(uri: str) -> str:
    """`s3`, `gs`, `az`, `s3+ddb`, ...; empty for a local folder."""
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def _user_options() -> dict[str, str]:
    raw = os.environ.get(ENV_OPTIONS, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # Never echo the value: it may hold keys.
        raise UsageError(f"{ENV_OPTIONS} must be a JSON object of storage options")
    return {str(k): str(v) for k, v in data.items()}


def storage_options(uri: str) -> dict[str, str]:
    """What LanceDB gets besides its own reading of the environment: MMSEARCH_STORAGE_OPTIONS,
    and for `s3` the keys of an AWS profile (LanceDB reads AWS_* variables, not profiles)."""
    options = _user_options()
    if scheme(uri).startswith("s3") and os.environ.get("AWS_PROFILE"):
        have = {k.lower() for k in options}
        if not have & {"aws_access_key_id", "access_key_id"} and not os.environ.get(
            "AWS_ACCESS_KEY_ID"
        ):
            options.update(_profile_keys())
    return options


def _profile_keys() -> dict[str, str]:
    try:
        import boto3
    except ImportError:
        return {}
    try:
        session = boto3.Session()
        creds = session.get_credentials()
    except Exception as e:
        raise StoreError(f"cannot read AWS profile: {redact(one_line(e))}") from None
    if creds is None:
        return {}
    frozen = creds.get_frozen_credentials()
    keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}
    if frozen.token:
        keys["aws_session_token"] = frozen.token
    if session.region_name:
        keys["aws_region"] = session.region_name
    return keys


@dataclass(frozen=True)
class Location:
    bucket: str
    prefix: str  # the store's folder inside the bucket, no trailing slash ("" at the root)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name


def location(uri: str) -> Location:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return Location(bucket, prefix.strip("/"))


def has_lease(uri: str) -> bool:
    """Whether writers to this store coordinate through a lease object in it (`s3://`);
    other schemes keep the local lock (one writer per machine)."""
    return scheme(uri) == "s3"


def _client(uri: str) -> Any:
    """A boto3 S3 client with the same endpoint, keys and region LanceDB uses."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StoreError(
            "writing to an s3:// store needs boto3: pip install 'mmsearch[s3]'"
        ) from None
    options = {k.lower(): v for k, v in storage_options(uri).items()}

    def pick(*names: str) -> str | None:
        return next((options[n] for n in names if options.get(n)), None)

    return boto3.client(
        "s3",
        endpoint_url=pick("aws_endpoint", "endpoint", "aws_endpoint_url", "endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL"),
        aws_access_key_id=pick("aws_access_key_id", "access_key_id"),
        aws_secret_access_key=pick("aws_secret_access_key", "secret_access_key"),
        aws_session_token=pick("aws_session_token", "session_token", "token"),
        region_name=pick("aws_region", "region") or os.environ.get("AWS_REGION"),
        config=Config(retries={"max_attempts": 3}, connect_timeout=5, read_timeout=20),
    )


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status else None


def _fail(uri: str, what: str, error: Exception) -> StoreError:
    return StoreError(f"cannot {what} in {uri}: {redact(one_line(error))}")


def probe(uri: str) -> None:
    """Refuse a bucket that ignores If-None-Match (it would lose commits), once per bucket
    and endpoint on this machine: create one object twice under that header; the second
    create must be refused (412) or the store cannot keep one writer."""
    client = _client(uri)
    where = location(uri)
    endpoint = client.meta.endpoint_url
    name = hashlib.sha1(f"{endpoint}\0{where.bucket}".encode()).hexdigest()
    known = _probed()
    if name in known:
        return
    key = where.key(f"{PROBE_PREFIX}{uuid.uuid4().hex}")
    try:
        client.put_object(Bucket=where.bucket, Key=key, Body=b"1", IfNoneMatch="*")
        try:
            client.put_object(Bucket=where.bucket, Key=key, Body=b"2", IfNoneMatch="*")
            honoured = False
        except Exception as e:
            if _status(e) not in (409, 412):
                raise
            honoured = True
    except StoreError:
        raise
    except Exception as e:
        raise _fail(uri, "probe conditional writes", e) from None
    finally:
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=where.bucket, Key=key)
    if not honoured:
        raise StoreError(
            f"the object store behind {uri} ignores conditional writes (If-None-Match), so "
            "two writers could lose each other's commits: use a store that honours them "
            "(AWS S3, MinIO, R2, GCS) or s3+ddb:// with a DynamoDB commit table"
        )
    known[name] = time.time()
    _remember_probed(known)


def _probed() -> dict[str, float]:
    try:
        data = json.loads((cache_root() / "remote" / PROBED).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_probed(known: dict[str, float]) -> None:
    from mmsearch.core.private import private_cache, write_private

    with contextlib.suppress(OSError):
        write_private(private_cache("remote") / PROBED, json.dumps(known))


def lease_ttl() -> float:
    value = os.environ.get(ENV_TTL, "").strip()
    if not value:
        return DEFAULT_TTL
    try:
        ttl = float(value)
    except ValueError:
        ttl = 0.0
    if not ttl > 0:
        raise UsageError(f"{ENV_TTL}: {value!r} is not a positive number of seconds")
    return ttl


def _clock() -> float:
    """Seconds on a clock that keeps counting while the machine sleeps (a suspended laptop
    is a stalled writer too); the monotonic clock where there is no such clock."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


class Lease:
    """The writer lease of one `s3://` store, held from `acquire` to `release` and renewed
    meanwhile by a daemon thread. `lost` turns true if another writer took it (this holder
    stalled past the ttl); `may_be_taken` also covers the stall the renewal thread has not
    noticed yet: the store then refuses to commit."""

    def __init__(self, uri: str, owner: str):
        self.uri, self.owner = uri, owner
        self.ttl = lease_ttl()
        self.where = location(uri)
        self.key = self.where.key(LEASE_KEY)
        self.lost = False
        self._confirmed = 0.0  # _clock() when the last successful write of the lease was sent
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "host": socket.gethostname(), "ttl": self.ttl}
        ).encode()

    def acquire(self) -> None:
        """Take the lease, or raise StoreBusy naming its holder."""
        probe(self.uri)
        self._client = client = _client(self.uri)
        sent = _clock()
        try:
            reply = client.put_object(
                Bucket=self.where.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*"
            )
        except Exception as e:
            if _status(e) not in (409, 412):
                raise _fail(self.uri, "take the writer lease", e) from None
            reply = self._take_over(client)  # its PUT went out after `sent`: on the safe side
        self._etag, self._confirmed = reply["ETag"], sent
        self._thread = threading.Thread(target=self._renew, name="mmsearch-lease", daemon=True)
        self._thread.start()

    def _take_over(self, client: Any) -> dict[str, Any]:
        """Take an expired lease; raise StoreBusy for a live one."""
        try:
            held = client.get_object(Bucket=self.where.bucket, Key=self.key)
            body = json.loads(held["Body"].read() or b"{}")
        except Exception as e:
            if _status(e) == 404:  # released meanwhile: try the clean way once more
                return self._create_or_busy(client, "another writer")
            raise _fail(self.uri, "read the writer lease", e) from None
        holder = _describe(body)
        # Both times from the server's clock: machines' clocks need not agree.
        server_now = held["ResponseMetadata"]["HTTPHeaders"].get("date")
        age = _age(held["LastModified"], server_now)
        ttl = float(body.get("ttl") or self.ttl) if isinstance(body, dict) else self.ttl
        if age is None or age < ttl:
            raise self.busy(holder, ttl - (age or 0))
        try:
            return client.put_object(
                Bucket=self.where.bucket, Key=self.key, Body=self._body(), IfMatch=held["ETag"]
            )
        except Exception as e:
            if _status(e) in (404, 409, 412):  # someone renewed or took it first
                raise self.busy(holder, ttl) from None
            raise _fail(self.uri, "take over the writer lease", e) from None

    def _create_or_busy(self, client: Any, holder: str) -> dict[str, Any]:
        try:
            return client.put_object(
                Bucket=self.where.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*"
            )
        except Exception as e:
            if _status(e) in (409, 412):
                raise self.busy(holder, self.ttl) from None
            raise _fail(self.uri, "take the writer lease", e) from None

    def busy(self, holder: str, left: float) -> StoreBusy:
        return StoreBusy(
            f"another writer ({holder}) holds {self.uri}; wait for it to finish, or if it "
            f"died, for its lease to expire (in about {max(1, round(left))} s), and try again"
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            sent = _clock()
            try:
                reply = self._client.put_object(
                    Bucket=self.where.bucket, Key=self.key, Body=self._body(), IfMatch=self._etag
                )
                self._etag, self._confirmed = reply["ETag"], sent
            except Exception as e:
                if _status(e) in (404, 409, 412):
                    self.lost = True
                    return
                # A network blip: try again next beat; the ttl leaves room for three.

    def may_be_taken(self) -> bool:
        """Whether another writer may hold the lease now: a renewal was refused, or none has
        succeeded for so long (this process was stopped, the machine slept, the network was
        down) that the server may count the lease expired. That is checked here, not left to
        the renewal thread, which after a stall may not have run yet when the writer goes on
        to commit. The margin: the server's clock counts whole seconds."""
        return self.lost or _clock() - self._confirmed >= self.ttl - min(1.0, self.ttl / 2)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._etag and not self.lost:
            with contextlib.suppress(Exception):
                self._client.delete_object(
                    Bucket=self.where.bucket, Key=self.key, IfMatch=self._etag
                )


def _describe(body: Any) -> str:
    if not isinstance(body, dict):
        return "another mmsearch process"
    owner = str(body.get("owner") or "another mmsearch process")
    host = str(body.get("host") or "")
    return " ".join(f"{owner} on {host}".split()) if host else owner


def _age(last_modified: Any, server_date: str | None) -> float | None:
    """Seconds since the lease was last written, by the server's clock (its Date header);
    None when the server sent no date."""
    if not server_date:
        return None
    from email.utils import parsedate_to_datetime

    try:
        now = parsedate_to_datetime(server_date)
    except (TypeError, ValueError):
        return None
    return (now - last_modified).total_seconds()


def cache_folder(uri: str) -> Path:
    """Where this machine keeps what it derives from a remote store (its search snapshots),
    named by the store's URI."""
    return cache_root() / "stores" / hashlib.sha1(uri.encode()).hexdigest()[:20]
