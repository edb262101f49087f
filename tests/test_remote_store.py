"""A store on object storage (`--db s3://...`), against a real S3 server (moto_server on
loopback): every command, credentials from the AWS environment, secrets never shown, one
writer across machines through the lease object, the conditional-write probe, and the
search snapshot kept in this machine's cache."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import env_settings, query_json, run

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"


def _bucket(endpoint: str) -> str:
    import boto3

    name = f"mm-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the session's S3 server, reached the standard AWS way; the store's
    URI (also in MMSEARCH_DB)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    for name in ("AWS_PROFILE", "MMSEARCH_STORAGE_OPTIONS", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    uri = f"s3://{_bucket(s3_server)}/photos-store"
    monkeypatch.setenv("MMSEARCH_DB", uri)
    return uri


def _objects(endpoint: str, uri: str) -> list[str]:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_every_command_works_on_an_s3_store(s3_env: str, s3_server: str, photos: Path) -> None:
    result = run("index", str(photos), "-q")
    assert result.exit_code == 0, result.stderr
    assert any(k.endswith(".manifest") for k in _objects(s3_server, s3_env))
    copy = photos / "chelsea-copy.jpg"
    copy.write_bytes((photos / "chelsea.jpg").read_bytes())
    assert run("index", str(photos), "-q").exit_code == 0
    assert query_json(str(photos / "chelsea.jpg"), "-n", "1")[0]["path"] == str(copy)
    status = run("status", "--json")
    assert status.exit_code == 0, status.stderr
    assert json.loads(status.stdout)["files_indexed"] == 8
    assert run("forget", str(copy)).exit_code == 0
    assert json.loads(run("status", "--json").stdout)["files_indexed"] == 7


def test_storage_options_come_from_mmsearch_storage_options(
    s3_env: str, s3_server: str, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No AWS_* variables at all: endpoint and keys from the JSON variable alone."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    options = {
        "aws_endpoint": s3_server,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": SECRET,
        "allow_http": "true",
        "aws_region": "us-east-1",
    }
    monkeypatch.setenv("MMSEARCH_STORAGE_OPTIONS", json.dumps(options))
    result = run("index", str(photos), "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(run("status", "--json").stdout)["files_indexed"] == 7


def test_a_store_that_cannot_be_reached_fails_in_one_line_without_secrets(
    s3_env: str, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An endpoint URL carrying the key, as a careless config would: nothing may echo it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:9/{SECRET}")
    monkeypatch.setenv("MMSEARCH_DB", f"s3://no-such-bucket-{SECRET.lower()[:8]}/x")
    for args in (["index", str(photos), "-q"], ["query", "red"], ["status"]):
        result = run(*args)
        out = result.stdout + result.stderr
        assert SECRET not in out, args
        assert "Traceback" not in out


def test_bad_storage_options_are_a_usage_error_that_does_not_echo_them(
    s3_env: str, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMSEARCH_STORAGE_OPTIONS", f'{{"aws_secret_access_key": "{SECRET}"')
    result = run("index", str(photos), "-q")
    assert result.exit_code == 2
    assert "MMSEARCH_STORAGE_OPTIONS must be a JSON object" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_redact_hides_every_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.core.redact import redact

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("MMSEARCH_STORAGE_OPTIONS", json.dumps({"azure_storage_sas_key": "s3cr3t"}))
    text = redact(f"failed with {SECRET} and s3cr3t at https://h/o?X-Amz-Signature=abc123")
    assert text == "failed with *** and *** at https://h/o?X-Amz-Signature=***"


# One writer across machines ------------------------------------------------------------

HOLD = """
import sys, time
from mmsearch.storage.store import Store
with Store(sys.argv[1]).writer_lock("index"):
    print("held", flush=True)
    time.sleep(600)
"""


def _other_machine(tmp_path: Path, name: str, ttl: float) -> dict[str, str]:
    """The environment of a process standing for another machine: its own cache and lock
    folders, so only the store itself can tell it that someone writes."""
    home = tmp_path / name
    return {**os.environ, "XDG_CACHE_HOME": str(home / "cache"), "MMSEARCH_LEASE_SECONDS": str(ttl)}


@contextlib.contextmanager
def _holder(uri: str, tmp_path: Path, ttl: float) -> Iterator[subprocess.Popen[str]]:
    """A process on "another machine" that holds the store's writer lease."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, uri],
        env=_other_machine(tmp_path, "machine-a", ttl),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _index_elsewhere(tmp_path: Path, folder: Path, ttl: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mmsearch", "index", str(folder), "-q"],
        env=_other_machine(tmp_path, "machine-b", ttl),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_second_writer_on_another_machine_is_refused_while_the_lease_is_held(
    s3_env: str, tmp_path: Path, photos: Path
) -> None:
    with _holder(s3_env, tmp_path, ttl=4):
        time.sleep(5)  # past one ttl: only the holder's renewals keep the lease
        result = _index_elsewhere(tmp_path, photos, ttl=4)
    assert result.returncode == 3, result.stderr
    assert "another writer (mmsearch index (pid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_killed_holders_lease_expires_and_the_next_writer_takes_it(
    s3_env: str, tmp_path: Path, photos: Path
) -> None:
    ttl = 30.0  # room for a slow start of the next writer on a busy machine
    with _holder(s3_env, tmp_path, ttl) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
    refused = _index_elsewhere(tmp_path, photos, ttl)
    assert time.monotonic() - killed < ttl, "too slow to see the lease still held"
    assert refused.returncode == 3, refused.stderr  # not yet expired
    time.sleep(max(0.0, killed + ttl + 1 - time.monotonic()))
    taken = _index_elsewhere(tmp_path, photos, ttl)
    assert taken.returncode == 0, taken.stderr
    assert json.loads(run("status", "--json").stdout)["files_indexed"] == 7


def test_the_lease_is_released_when_the_writer_finishes(
    s3_env: str, s3_server: str, photos: Path
) -> None:
    assert run("index", str(photos), "-q").exit_code == 0
    assert not any(k.endswith("writer.lease") for k in _objects(s3_server, s3_env))


# The conditional-write probe -------------------------------------------------------------


class _Forgetful(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that drops conditional headers, as some S3-compatible stores do:
    a real proxy in front of the real server."""

    upstream = ("127.0.0.1", 0)
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        dropped = {"if-none-match", "if-match", "host", "content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        conn.request(self.command, self.path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    def log_message(self, *args: object) -> None:
        pass


def test_a_store_that_ignores_conditional_writes_is_refused(
    s3_env: str, s3_server: str, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = s3_server.removeprefix("http://").split(":")
    handler = type("Handler", (_Forgetful,), {"upstream": (host, int(port))})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
        result = run("index", str(photos), "-q")
    finally:
        proxy.shutdown()
    assert result.exit_code == 1
    assert "ignores conditional writes (If-None-Match)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not [k for k in _objects(s3_server, s3_env) if k.endswith(".manifest")]


# Queries over a remote store ---------------------------------------------------------------


def test_a_query_keeps_the_snapshot_in_the_local_cache_by_table_version(
    s3_env: str, photos: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mmsearch.storage import snapshot

    indexer = os.environ["MMSEARCH_CACHE"]
    assert run("index", str(photos), "-q").exit_code == 0
    settings = env_settings()
    laptop = tmp_path / "laptop-cache"  # another machine: the model, no snapshot yet
    shutil.copytree(indexer, laptop, ignore=shutil.ignore_patterns("stores"))
    monkeypatch.setenv("MMSEARCH_CACHE", str(laptop))
    assert snapshot.open_fresh(settings.db, settings.model_key) is None
    assert query_json(str(photos / "chelsea.jpg"), "-n", "2")
    assert str(snapshot.folder(settings.db, settings.model_key)).startswith(str(laptop))
    fresh = snapshot.open_fresh(settings.db, settings.model_key)
    assert fresh is not None and len(fresh.vectors) == 7

    monkeypatch.setenv("MMSEARCH_CACHE", indexer)
    (photos / "chelsea-copy.jpg").write_bytes((photos / "chelsea.jpg").read_bytes())
    assert run("index", str(photos), "-q").exit_code == 0
    monkeypatch.setenv("MMSEARCH_CACHE", str(laptop))
    assert snapshot.open_fresh(settings.db, settings.model_key) is None  # a newer version
    assert query_json(str(photos / "chelsea.jpg"), "-n", "1")[0]["path"].endswith("copy.jpg")
    fresh = snapshot.open_fresh(settings.db, settings.model_key)
    assert fresh is not None and len(fresh.vectors) == 8
    kept = [laptop / "stores", *(laptop / "stores").rglob("*")]  # paths and passages:
    assert {stat.S_IMODE(p.stat().st_mode) & 0o077 for p in kept} == {0}  # private


STALLED_WRITER = """
import os, sys
import numpy as np
from mmsearch.core.config import Settings
from mmsearch.core.errors import MmsearchError
from mmsearch.storage.store import Item, Store

settings = Settings(db=os.environ["MMSEARCH_DB"], model=os.environ["MMSEARCH_MODEL"])
store = Store(settings.db)
coll = store.collection(settings)
action, path = sys.argv[1:]
vector = np.full(coll.dim, coll.dim ** -0.5, np.float32)
row = {"path": path, "kind": "image", "size": 1, "mtime_ns": 1, "content_hash": "stalled",
       "status": "ok", "reason": None, "items": 1, "ocr": None}
commit = {
    "add": lambda: coll.write([Item(path, "image", "stalled", vector)], [row]),
    "remove": lambda: coll.remove([path]),  # what a run does with files that vanished
    "forget": lambda: coll.remove_subtrees([path]),
}[action]
with store.writer_lock("index"):
    print("held", flush=True)
    sys.stdin.readline()  # its batch is ready: the test stops it here, then lets it commit
    try:
        commit()
    except MmsearchError as e:
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
print("committed", flush=True)
"""


@pytest.mark.parametrize(
    ("action", "target"),
    [("add", "written-late.png"), ("remove", "chelsea.jpg"), ("forget", "trips")],
)
def test_a_writer_that_stalled_past_its_lease_refuses_to_commit_once_another_took_it(
    s3_env: str,
    tmp_path: Path,
    photos: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    target: str,
) -> None:
    """A writer on one machine stops dead (a suspended laptop, a stopped process) with its
    batch ready, long enough for its lease to expire; a writer on another machine takes the
    lease over. When the first resumes and goes on to commit — new rows, or removals — it
    must refuse: two writers never commit at once."""
    from mmsearch.core.errors import StoreBusy
    from mmsearch.storage.store import Store

    assert run("index", str(photos), "-q").exit_code == 0
    ttl = 2.0
    stalled = subprocess.Popen(
        [sys.executable, "-c", STALLED_WRITER, action, str(photos / target)],
        env=_other_machine(tmp_path, "machine-a", ttl),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert stalled.stdout is not None and stalled.stdout.readline().strip() == "held"
        os.kill(stalled.pid, signal.SIGSTOP)
        monkeypatch.setenv("MMSEARCH_LEASE_SECONDS", str(ttl))
        store = Store(s3_env)  # this process is the writer on the other machine
        deadline = time.monotonic() + 60
        while True:
            try:
                with store.writer_lock("index"):
                    os.kill(stalled.pid, signal.SIGCONT)
                    out, err = stalled.communicate("commit\n", timeout=60)
                break
            except StoreBusy:  # the stalled writer's lease has not expired yet
                assert time.monotonic() < deadline, "the stalled lease never expired"
                time.sleep(0.2)
    finally:
        if stalled.poll() is None:
            os.kill(stalled.pid, signal.SIGCONT)
            stalled.kill()
        stalled.wait(10)
    assert stalled.returncode == 3, (out, err)
    assert "stalled past its lease" in err and "committed" not in out
    assert json.loads(run("status", "--json").stdout)["files_indexed"] == 7
