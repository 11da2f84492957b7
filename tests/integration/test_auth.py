"""The auth routes over HTTP: register, login, refresh, logout, me, rate
limits (docs/auth.md)."""
import base64
import json

import pytest

from conftest import DEFAULT_CONFIG, Server, make_project

SECRET = "integration-secret-0123456789abcdef"
AUTH_CONFIG = DEFAULT_CONFIG + """\
auth:
  jwt:
    secret: "%s"
    issuer: alyx-it
%s""" % (SECRET, "%s")
PW = "Correct-Horse-9"


def config(rate_limit):
    return AUTH_CONFIG % rate_limit


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("auth"), config(
        "  rate_limit:\n    login: 1000/minute\n    register: 1000/minute\n"))
    s = Server(proj)
    yield s
    assert s.stop() == 0


def register(srv, email, **extra):
    body = {"email": email, "password": PW}
    body.update(extra)
    return srv.json("POST", "/api/auth/register", body)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def b64(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_register_login_me(srv):
    st, h, body = register(srv, "Ada@Example.com", name="Ada")
    assert st == 201, body
    assert h["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    user = body["user"]
    assert user["email"] == "ada@example.com" and user["name"] == "Ada"
    assert user["role"] == "user" and user["verified"] is False
    assert "password" not in json.dumps(body)
    # The account is the users document.
    st, _, doc = srv.json("GET", "/api/collections/users/" + user["id"])
    assert st == 200 and doc["name"] == "Ada"

    st, _, me = srv.json("GET", "/api/auth/me",
                         headers=bearer(body["access_token"]))
    assert st == 200 and me["id"] == user["id"]

    st, _, login = srv.json("POST", "/api/auth/login",
                            {"email": "ada@example.com", "password": PW})
    assert st == 200 and login["user"]["id"] == user["id"]
    assert login["refresh_token"] != body["refresh_token"]


def test_register_refusals(srv):
    st, _, b = register(srv, "eve@example.com", role="admin")
    assert st == 422 and b["error"]["code"] == "VALIDATION_ERROR"
    assert any(f["field"] == "role" for f in b["error"]["details"]["fields"])
    st, _, b = srv.json("POST", "/api/auth/register",
                        {"email": "eve@example.com", "password": "weak"})
    assert st == 422
    st, _, b = srv.json("POST", "/api/auth/register", "{not json",
                        headers={"Content-Type": "application/json"})
    assert st == 400
    st, _, b = srv.json("POST", "/api/auth/register", "x",
                        headers={"Content-Type": "text/plain"})
    assert st == 415
    assert register(srv, "dup@example.com")[0] == 201
    st, _, b = register(srv, "DUP@example.com")
    assert st == 409 and b["error"]["code"] == "CONFLICT"
    st, h, _ = srv.json("GET", "/api/auth/login")
    assert st == 405 and "POST" in h["allow"]


def test_login_does_not_reveal_accounts(srv):
    assert register(srv, "kim@example.com")[0] == 201
    st1, h1, wrong = srv.json("POST", "/api/auth/login",
                              {"email": "kim@example.com",
                               "password": "Wrong-Pass-1"})
    st2, h2, unknown = srv.json("POST", "/api/auth/login",
                                {"email": "nobody@example.com",
                                 "password": "Wrong-Pass-1"})
    assert st1 == st2 == 401
    assert h1["www-authenticate"] == h2["www-authenticate"] == "Bearer"
    for k in ("code", "message", "details"):
        assert wrong["error"][k] == unknown["error"][k]


def test_bad_tokens_rejected(srv):
    _, _, body = register(srv, "tok@example.com")
    good = body["access_token"]
    head, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert claims["iss"] == "alyx-it" and claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == 900
    forged = dict(claims, role="admin")
    cases = [
        None,                                   # no header
        "garbage",
        b64({"alg": "none", "typ": "JWT"}) + "." + b64(forged) + ".",
        head + "." + b64(forged) + "." + sig,   # payload swapped
        head + "." + payload + "." + sig[:-2] + ("AA" if sig[-2:] != "AA"
                                                 else "BB"),
        head + "." + b64(dict(claims, exp=1)) + "." + sig,
    ]
    for tok in cases:
        st, h, b = srv.json("GET", "/api/auth/me",
                            headers=bearer(tok) if tok else {})
        assert st == 401, tok
        assert b["error"]["code"] == "UNAUTHORIZED"


def test_refresh_rotation_reuse_and_logout(srv):
    _, _, body = register(srv, "rot@example.com")
    r1 = body["refresh_token"]
    st, _, b2 = srv.json("POST", "/api/auth/refresh", {"refresh_token": r1})
    assert st == 200
    r2 = b2["refresh_token"]
    assert r2 != r1
    # r1 again: reuse revokes the family, r2 included.
    st, _, b = srv.json("POST", "/api/auth/refresh", {"refresh_token": r1})
    assert st == 401 and b["error"]["details"] == {"reason": "reused"}
    st, _, _ = srv.json("POST", "/api/auth/refresh", {"refresh_token": r2})
    assert st == 401
    # Logout revokes a session.
    _, _, login = srv.json("POST", "/api/auth/login",
                           {"email": "rot@example.com", "password": PW})
    r = login["refresh_token"]
    st, _, data = srv.request("POST", "/api/auth/logout",
                              {"refresh_token": r})
    assert st == 204 and data == b""
    st, _, _ = srv.json("POST", "/api/auth/refresh", {"refresh_token": r})
    assert st == 401
    st, _, _ = srv.json("POST", "/api/auth/logout", {"refresh_token": r})
    assert st == 401


def test_default_rate_limits(tmp_path):
    # No rate_limit section: the seed's defaults (login 5/minute,
    # register 3/minute), per client address.
    s = Server(make_project(tmp_path, config("")))
    try:
        for i in range(3):
            st, _, _ = register(s, "r%d@example.com" % i)
            assert st == 201
        st, h, b = register(s, "r9@example.com")
        assert st == 429 and b["error"]["code"] == "RATE_LIMITED", b
        retry = int(h["retry-after"])
        assert 1 <= retry <= 60
        assert b["error"]["details"]["retry_after"] == retry
        for i in range(5):
            st, _, _ = s.json("POST", "/api/auth/login",
                              {"email": "r0@example.com",
                               "password": "Wrong-Pass-%d" % i})
            assert st == 401
        st, h, _ = s.json("POST", "/api/auth/login",
                          {"email": "r0@example.com", "password": PW})
        assert st == 429 and int(h["retry-after"]) >= 1
    finally:
        assert s.stop() == 0
