"""Access over real sockets: rate limits (with the real openai client), keys never in URLs nor
logs, 401s in OpenAI's shape, no keyless server beyond loopback, stalled SSE clients dropped."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from firesift.api.accesslog import redact
from firesift.api.app import create_app
from firesift.api.auth import KeyStore
from firesift.api.ratelimit import RateLimiter, format_reset
from firesift.api.server import serve_in_thread
from firesift.service import Service
from firesift.synthetic import SyntheticStream

pytest_plugins = ["api_server"]

HANG_GUARD_S = 90.0
"""Longest a test waits for something that must happen (a guard against hangs, not a goal)."""


# -- the token bucket's arithmetic (an injected clock: no sleeping) --------------------------


def test_token_bucket_burst_refill_and_headers() -> None:
    now = [100.0]
    limiter = RateLimiter(120, burst=2, clock=lambda: now[0])  # 2 a second, 2 at once
    first, second, third = (limiter.check("k") for _ in range(3))
    assert first.allowed and second.allowed and not third.allowed
    assert (first.remaining, second.remaining, third.remaining) == (1, 0, 0)
    assert third.retry_after_s == pytest.approx(0.5)
    headers = third.headers()
    assert headers["retry-after"] == "1" and headers["retry-after-ms"] == "500"
    assert headers["x-ratelimit-limit-requests"] == "120"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert limiter.check("other").allowed  # buckets are per name
    now[0] += 0.5
    assert limiter.check("k").allowed and not limiter.check("k").allowed
    now[0] += 60
    assert limiter.check("k").remaining == 1  # refilled to the burst, never past it
    assert [format_reset(s) for s in (0, 0.25, 2, 90)] == ["0s", "250ms", "2s", "1m30s"]


# -- rate limits over a real socket ---------------------------------------------------------


def test_rate_limit_429_and_the_openai_clients_own_retry(service: Service, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    _, secret = keys.create("ci")
    _, other = keys.create("other")
    app = create_app(service, keys=keys, host="0.0.0.0", rate_limit=20, rate_limit_burst=2)
    with serve_in_thread(app) as url:
        with openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0) as c:
            ok = c.models.with_raw_response.list()
            assert ok.headers["x-ratelimit-limit-requests"] == "20"
            assert ok.headers["x-ratelimit-remaining-requests"] == "1"
            c.models.list()
            with pytest.raises(openai.RateLimitError) as exc:
                c.models.list()
        refused = exc.value.response
        assert refused.status_code == 429
        assert refused.json() == {
            "error": {
                "message": refused.json()["error"]["message"],
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        assert "20 requests a minute" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 3  # a token every 3 s
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"].endswith("s")

        # Another key has its own bucket.
        with openai.OpenAI(base_url=url + "/v1", api_key=other, max_retries=0) as c:
            assert c.models.list().data

        # With retries on, the client waits as retry-after says, and then it is let in.
        statuses: list[int] = []
        http = httpx.Client(event_hooks={"response": [lambda r: statuses.append(r.status_code)]})
        with openai.OpenAI(
            base_url=url + "/v1", api_key=secret, max_retries=3, http_client=http
        ) as c:
            models = c.models.list()
        assert "firesift-extractive" in [m.id for m in models.data]
        assert statuses[0] == 429 and statuses[-1] == 200, statuses


def test_keyless_loopback_is_limited_per_client_address(service: Service, tmp_path: Path) -> None:
    app = create_app(service, keys=KeyStore(tmp_path), rate_limit=60, rate_limit_burst=1)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/api/stats").status_code == 200
        r = c.get("/api/stats")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        assert r.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200  # public paths are never limited


# -- keys in URLs, keys in logs, 401s ------------------------------------------------------


def test_a_key_in_the_query_string_is_refused(service: Service, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    _, secret = keys.create()
    app = create_app(service, keys=keys, host="0.0.0.0")
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as c:
        for name in ("api_key", "key", "API_KEY"):
            r = c.get("/api/stats", params={name: secret})
            assert r.status_code == 401, name
            error = r.json()["error"]
            assert error["code"] == "api_key_in_url"
            assert error["type"] == "authentication_error"
            assert "Authorization: Bearer" in error["message"]
            assert secret not in r.text
        # Even with the right header too: the key has leaked into the URL.
        auth = {"Authorization": f"Bearer {secret}"}
        assert c.get("/api/stats", params={"key": secret}, headers=auth).status_code == 401
        assert c.get("/api/stats", headers=auth).status_code == 200
        assert c.get("/api/stats", params={"api_key": ""}, headers=auth).status_code == 200


def test_redact() -> None:
    line = '127.0.0.1:5 - "GET /api/live?q=x&api_key=fs-abc&Key=fs-d&token=t HTTP/1.1" 401'
    assert redact(line) == (
        '127.0.0.1:5 - "GET /api/live?q=x&api_key=***&Key=***&token=*** HTTP/1.1" 401'
    )
    assert redact("/api/search?q=keys&keyword=a") == "/api/search?q=keys&keyword=a"


def test_keys_never_reach_the_access_log_and_401s_in_openai_shape(
    ingested_db: Path, tmp_path: Path
) -> None:
    from api_server import ServerProcess, copy_db

    db = copy_db(ingested_db, tmp_path / "db")
    keys = KeyStore(db)
    key, secret = keys.create("ci")
    server = ServerProcess(db, tmp_path, host="0.0.0.0", args=("--log-level", "info"))
    url = "http://127.0.0.1:" + server.url.rsplit(":", 1)[1]
    try:
        with httpx.Client(base_url=url) as c:
            auth = {"Authorization": f"Bearer {secret}"}
            assert c.get("/api/stats", headers=auth).status_code == 200
            for params in ({"api_key": secret}, {"key": secret}, {"q": "gunman", "key": secret}):
                r = c.get("/api/search", params=params)
                assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_in_url"
            r = c.post(f"/v1/chat/completions?api_key={secret}", json={}, headers=auth)
            assert r.status_code == 401

        base = url + "/v1"
        with (
            openai.OpenAI(base_url=base, api_key="fs-wrong", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError) as wrong,
        ):
            c.models.list()
        assert isinstance(wrong.value.body, dict)
        assert wrong.value.body["code"] == "invalid_api_key"
        assert wrong.value.body["type"] == "authentication_error"
        missing = httpx.get(url + "/v1/models")
        assert missing.status_code == 401
        assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
        assert missing.json()["error"]["code"] == "missing_api_key"

        # Revoked from another process (the CLI's KeyStore): refused on the very next request.
        with openai.OpenAI(base_url=base, api_key=secret, max_retries=0) as c:
            assert c.models.list().data
            KeyStore(db).revoke(key.id)
            with pytest.raises(openai.AuthenticationError) as revoked:
                c.models.list()
        assert isinstance(revoked.value.body, dict)
        assert revoked.value.body["code"] == "invalid_api_key"
    finally:
        server.stop()
    log = server.output()
    assert "Traceback" not in log, log
    assert "GET /api/stats HTTP/1.1" in log  # the access log was on
    assert "api_key=***" in log and "key=***" in log  # ... and redacted the URLs
    assert secret not in log
    assert secret[len("fs-") :] not in log


# -- no keyless server beyond loopback --------------------------------------------------------


def test_serve_beyond_loopback_without_keys_refuses_to_start(
    ingested_db: Path, tmp_path: Path
) -> None:
    from api_server import ServerProcess, copy_db

    db = tmp_path / "db"
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": ""}
    argv = [sys.executable, "-m", "firesift.cli", "serve", "--db", str(db)]
    for host in ("0.0.0.0", "::"):
        done = subprocess.run(
            [*argv, "--host", host, "--port", "0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=HANG_GUARD_S,
        )
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert lines == [
            f"firesift: refusing to listen on {host} without API keys:"
            " create one with `firesift keys create`"
        ]
        assert "Traceback" not in done.stderr
    # With a key, the same command serves (and the key is needed).
    keyed = copy_db(ingested_db, tmp_path / "keyed")
    KeyStore(keyed).create()
    server = ServerProcess(keyed, tmp_path, host="0.0.0.0")
    try:
        port = server.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/api/stats").status_code == 401
    finally:
        server.stop()


# -- a reader that stops reading is dropped --------------------------------------------------


def _read_headers(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1024)
        assert chunk, data
        data += chunk
    return data


def test_a_stalled_sse_reader_is_dropped(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="firesift.api")
    app = create_app(service, sse_stall_s=1.0, heartbeat_s=0.5)
    baseline = service.live.clients
    stream = SyntheticStream(seed=21)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as feeder:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: the window
        sock.settimeout(HANG_GUARD_S)
        sock.connect((host, int(port)))
        try:
            sock.sendall(f"GET /api/live HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = _read_headers(sock)
            assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
            deadline = time.monotonic() + HANG_GUARD_S
            while service.live.clients > baseline:  # now the client reads nothing
                assert time.monotonic() < deadline, "the stalled client was never dropped"
                batch = b"".join(stream.lines(500))
                assert feeder.post("/api/ingest", content=batch).status_code == 200
            # Dropped: the server closed the connection (what was in flight, then EOF).
            received = 0
            while chunk := sock.recv(65536):
                received += len(chunk)
        finally:
            sock.close()
        assert received > 0
        assert service.live.clients == baseline
        assert "dropping an event-stream client that read nothing for 1 s" in caplog.text
        # The server goes on serving readers that read.
        with feeder.stream("GET", "/api/live") as live:
            for line in live.iter_lines():
                if line == ": connected":
                    ingest = feeder.post("/api/ingest", content=b"".join(stream.lines(20)))
                    assert ingest.status_code == 200
                if line.startswith("event: post"):
                    break
