"""API keys: storage, the loopback rule, and what clients see (OpenAI's 401)."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import openai
import pytest

from firesift.api.app import create_app
from firesift.api.auth import AuthPolicy, KeyStore, is_loopback
from firesift.api.server import serve_in_thread
from firesift.errors import NotFound
from firesift.service import Service

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "What happened in Ferguson?"}]

pytest_plugins = ["api_server"]


def test_keys_are_stored_hashed_with_private_permissions(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    key, secret = keys.create("laptop")
    assert secret.startswith("fs-") and len(secret) > 40
    assert stat.S_IMODE(keys.path.stat().st_mode) == 0o600
    text = keys.path.read_text()
    assert secret not in text
    assert key.sha256 in text
    listed = keys.list()
    assert [k.id for k in listed] == [key.id]
    shown = listed[0].public()
    assert shown["prefix"] == secret[:10] and shown["name"] == "laptop"
    assert "sha256" not in shown and shown["last_used"] is None
    assert keys.check(secret) == key
    assert keys.check(secret + "x") is None
    keys.flush()
    assert KeyStore(tmp_path).list()[0].last_used is not None
    assert keys.revoke(key.id).id == key.id
    assert keys.check(secret) is None
    with pytest.raises(NotFound, match="keys list"):
        keys.revoke(key.id)


def test_another_process_sees_new_and_revoked_keys(tmp_path: Path) -> None:
    server_side = KeyStore(tmp_path)
    assert not server_side.exist()
    key, secret = KeyStore(tmp_path).create()
    assert server_side.check(secret) is not None
    KeyStore(tmp_path).revoke(key.prefix)
    assert server_side.check(secret) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_loopback_rule(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_policy(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    assert AuthPolicy(keys, bind_host="0.0.0.0").required("127.0.0.1")
    assert AuthPolicy(keys).required("198.51.100.4")
    assert not AuthPolicy(keys).required("127.0.0.1")
    assert not AuthPolicy(keys, require_key=True).required("127.0.0.1")  # no key exists yet
    keys.create()
    assert AuthPolicy(keys, require_key=True).required("127.0.0.1")
    assert not AuthPolicy(keys).required("127.0.0.1")


@pytest.mark.anyio
async def test_non_loopback_needs_a_key_openai_client(service: Service, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    app = create_app(service, keys=keys, host="0.0.0.0")
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))

    def client(key: str) -> openai.AsyncOpenAI:
        http = httpx.AsyncClient(transport=transport, base_url="http://firesift.example")
        return openai.AsyncOpenAI(
            base_url="http://firesift.example/v1", api_key=key, http_client=http, max_retries=0
        )

    async with client("fs-guess") as c:
        with pytest.raises(openai.AuthenticationError) as exc:
            await c.chat.completions.create(model="firesift-extractive", messages=MESSAGES)  # type: ignore[arg-type]
        assert isinstance(exc.value.body, dict)
        assert "firesift keys create" in exc.value.body["message"]
    key, secret = keys.create("ci")
    async with client(secret) as c:
        r = await c.chat.completions.create(model="firesift-extractive", messages=MESSAGES)  # type: ignore[arg-type]
        assert r.model_extra and r.model_extra["grounded"] is True
        keys.revoke(key.id)
        with pytest.raises(openai.AuthenticationError) as exc:
            await c.models.list()
        assert isinstance(exc.value.body, dict)
        assert exc.value.body["code"] == "invalid_api_key"
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as raw:
        health = await raw.get("/healthz")
        assert health.status_code == 200
        page = await raw.get("/")
        assert page.status_code == 200
        denied = await raw.get("/api/stats")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert denied.json()["error"]["type"] == "authentication_error"


@pytest.mark.anyio
async def test_remote_client_on_loopback_bind_and_no_query_key(
    service: Service, tmp_path: Path
) -> None:
    keys = KeyStore(tmp_path)
    _, secret = keys.create()
    app = create_app(service, keys=keys)
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    remote = httpx.ASGITransport(app=app, client=("198.51.100.4", 50000))
    async with httpx.AsyncClient(transport=local, base_url="http://t") as c:
        assert (await c.get("/api/stats")).status_code == 200
    async with httpx.AsyncClient(transport=remote, base_url="http://t") as c:
        assert (await c.get("/api/stats")).status_code == 401
        in_url = await c.get("/api/stats", params={"api_key": secret})
        assert in_url.status_code == 401 and in_url.json()["error"]["code"] == "api_key_in_url"
        r = await c.get("/api/stats", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 200


def test_real_socket_non_loopback_rule(service: Service, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path)
    app = create_app(service, keys=keys, host="0.0.0.0")
    with serve_in_thread(app) as url:
        with (
            openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError),
        ):
            c.models.list()
        _, secret = keys.create()
        with openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0) as c:
            assert "firesift-extractive" in [m.id for m in c.models.list().data]
