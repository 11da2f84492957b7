"""OAuth sign-in (GitHub, Google) against a fake provider on loopback
(tests/integration/fakeprovider.py): providers list, redirect with state
and PKCE, the callback's code exchange and user info on alyxd's outbound
workers, account creation and linking by verified email only, bad state,
replayed state and codes, provider errors and timeouts, frontend
redirects (docs/auth.md)."""
import http.client
import sqlite3
import time
import urllib.parse

import pytest

from conftest import DEFAULT_CONFIG, SLOW, Server, make_project
from fakeprovider import Fake

SECRET = "oauth-test-secret-0123456789abcdefghij"
PW = "Correct-Horse-9"


def config(fake_url, extra="", oauth_rate="1000/minute"):
    return DEFAULT_CONFIG + """\
auth:
  jwt:
    secret: %(secret)s
  rate_limit:
    register: 1000/minute
    login: 1000/minute
    oauth: %(rate)s
  oauth:
    timeout: 1s
%(extra)s    github:
      client_id: gh-client
      client_secret: gh-secret
      auth_url: %(u)s/github/authorize
      token_url: %(u)s/github/token
      userinfo_url: %(u)s/github/user
      emails_url: %(u)s/github/user/emails
    google:
      client_id: gg-client
      client_secret: gg-secret
      auth_url: %(u)s/google/authorize
      token_url: %(u)s/google/token
      userinfo_url: %(u)s/google/userinfo
""" % {"secret": SECRET, "u": fake_url, "extra": extra, "rate": oauth_rate}


@pytest.fixture(scope="module")
def fake():
    f = Fake()
    yield f
    f.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, fake):
    s = Server(make_project(tmp_path_factory.mktemp("oauth"),
                            config(fake.url)))
    yield s
    assert s.stop() == 0


def get(url):
    """GET an absolute URL; (status, headers, body bytes)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30 * SLOW)
    try:
        c.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def start(srv, prov):
    st, h, body = srv.json("GET", "/api/auth/oauth/" + prov)
    assert st == 302, body
    return h["location"]


def consent(srv, prov):
    """Start, then the provider's authorize page: the callback URL."""
    st, h, _ = get(start(srv, prov))
    assert st == 302
    return h["location"]


def callback(srv, url):
    u = urllib.parse.urlsplit(url)
    return srv.json("GET", u.path + "?" + u.query)


def sign_in(srv, prov):
    return callback(srv, consent(srv, prov))


def db(srv):
    return sqlite3.connect(str(srv.proj / "data" / "alyx.db"))


def oauth_rows(srv, uid):
    con = db(srv)
    try:
        return con.execute("SELECT provider, provider_user_id FROM "
                           "_alyx_oauth_accounts WHERE user_id=?",
                           (uid,)).fetchall()
    finally:
        con.close()


def test_providers(srv):
    st, _, body = srv.json("GET", "/api/auth/providers")
    assert st == 200
    assert body == {"providers": [
        {"name": "github", "url": "/api/auth/oauth/github"},
        {"name": "google", "url": "/api/auth/oauth/google"}]}


def test_redirect_has_state_and_pkce(srv):
    st, h, body = srv.json("GET", "/api/auth/oauth/github")
    assert st == 302 and h["cache-control"] == "no-store"
    u = urllib.parse.urlsplit(h["location"])
    q = dict(urllib.parse.parse_qsl(u.query))
    assert u.path == "/github/authorize"
    assert q["response_type"] == "code" and q["client_id"] == "gh-client"
    assert q["redirect_uri"] == "http://127.0.0.1:%d/api/auth/oauth/" \
        "github/callback" % srv.port
    assert q["scope"] == "user:email"
    assert q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43 and len(q["state"]) == 43
    assert body["state"] == q["state"] and body["url"] == h["location"]
    # Each sign-in gets its own state; the verifier never leaves.
    q2 = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        start(srv, "github")).query))
    assert q2["state"] != q["state"]
    assert q2["code_challenge"] != q["code_challenge"]
    # Stored server-side, hashed.
    con = db(srv)
    rows = [r[0] for r in con.execute("SELECT token_hash FROM "
                                      "_alyx_auth_tokens WHERE kind='oauth'")]
    con.close()
    assert q["state"] not in rows and len(rows) >= 2
    _, _, body = srv.json("GET", "/api/auth/oauth/google")
    assert "scope=email%20profile" in body["url"]


def test_unknown_provider(srv):
    for p in ("gitlab", "github/other"):
        st, _, err = srv.json("GET", "/api/auth/oauth/" + p)
        assert st == 404, err
    st, _, err = srv.json("GET", "/api/auth/oauth/gitlab/callback?code=x"
                          "&state=y")
    assert st == 404 and err["error"]["code"] == "NOT_FOUND"


def test_sign_in_starts_are_rate_limited_per_address(tmp_path, fake):
    """auth.rate_limit.oauth counts sign-in starts per client address (each
    stores a state): past it, 429 RATE_LIMITED with Retry-After and no
    state stored; a callback is not counted, an unknown provider is not
    counted; the other provider shares the address's budget."""
    s = Server(make_project(tmp_path, config(fake.url,
                                             oauth_rate="2/minute")))
    try:
        st, _, _ = s.json("GET", "/api/auth/oauth/gitlab")
        assert st == 404
        start(s, "github")
        start(s, "google")
        db = sqlite3.connect(str(s.proj / "data" / "alyx.db"))
        n = db.execute("SELECT count(*) FROM _alyx_auth_tokens WHERE "
                       "kind='oauth'").fetchone()[0]
        assert n == 2
        st, h, body = s.json("GET", "/api/auth/oauth/github")
        assert st == 429, body
        assert body["error"]["code"] == "RATE_LIMITED", body
        assert 0 < int(h["retry-after"]) <= 60
        assert "location" not in h
        assert db.execute("SELECT count(*) FROM _alyx_auth_tokens WHERE "
                          "kind='oauth'").fetchone()[0] == n
        db.close()
        # A callback (here with a bad state) is answered as before.
        st, _, body = s.json("GET", "/api/auth/oauth/github/callback?"
                             "code=c&state=nope")
        assert st == 401, body
    finally:
        assert s.stop() == 0


def test_new_user_from_github(srv, fake):
    fake.users["github"] = {"id": 1001, "login": "octo", "name": "Octo Cat",
                            "email": None,
                            "avatar_url": "https://img.test/octo.png"}
    fake.emails = [{"email": "octo-old@example.com", "primary": False,
                    "verified": True},
                   {"email": "Octo@Example.com", "primary": True,
                    "verified": True}]
    st, h, body = sign_in(srv, "github")
    assert st == 200, body
    assert h["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    user = body["user"]
    assert user["email"] == "octo@example.com" and user["verified"] is True
    assert user["name"] == "Octo Cat" and user["role"] == "user"
    assert user["avatar_url"] == "https://img.test/octo.png"
    assert oauth_rows(srv, user["id"]) == [("github", "1001")]
    st, _, me = srv.json("GET", "/api/auth/me", headers={
        "Authorization": "Bearer " + body["access_token"]})
    assert st == 200 and me["id"] == user["id"]
    # The refresh token works like any other.
    st, _, _ = srv.json("POST", "/api/auth/refresh",
                        {"refresh_token": body["refresh_token"]})
    assert st == 200
    # Signing in again finds the same account through its link.
    fake.emails = []
    st, _, again = sign_in(srv, "github")
    assert st == 200 and again["user"]["id"] == user["id"]
    assert oauth_rows(srv, user["id"]) == [("github", "1001")]


def test_links_an_existing_account_by_verified_email(srv, fake):
    st, _, reg = srv.json("POST", "/api/auth/register",
                          {"email": "lin@example.com", "password": PW,
                           "name": "Lin"})
    assert st == 201 and reg["user"]["verified"] is False
    fake.users["google"] = {"sub": "g-77", "email": "Lin@Example.com",
                            "email_verified": True, "name": "Lin G"}
    st, _, body = sign_in(srv, "google")
    assert st == 200, body
    assert body["user"]["id"] == reg["user"]["id"]
    assert body["user"]["verified"] is True
    assert body["user"]["name"] == "Lin"      # the account's own document
    assert oauth_rows(srv, reg["user"]["id"]) == [("google", "g-77")]
    # The password still works.
    st, _, _ = srv.json("POST", "/api/auth/login",
                        {"email": "lin@example.com", "password": PW})
    assert st == 200


def test_unverified_provider_email_does_not_link(srv, fake):
    st, _, reg = srv.json("POST", "/api/auth/register",
                          {"email": "vic@example.com", "password": PW})
    assert st == 201
    fake.users["github"] = {"id": 2002, "login": "mallory",
                            "email": "vic@example.com"}
    fake.emails = [{"email": "vic@example.com", "primary": True,
                    "verified": False}]
    st, _, err = sign_in(srv, "github")
    assert st == 409, err
    assert err["error"]["details"]["reason"] == "unverified_provider_email"
    fake.users["google"] = {"sub": "g-mal", "email": "vic@example.com",
                            "email_verified": False}
    st, _, err = sign_in(srv, "google")
    assert st == 409, err
    assert oauth_rows(srv, reg["user"]["id"]) == []
    con = db(srv)
    n = con.execute("SELECT count(*) FROM _alyx_users WHERE email="
                    "'vic@example.com'").fetchone()[0]
    con.close()
    assert n == 1


def test_new_account_with_an_unverified_email(srv, fake):
    fake.users["google"] = {"sub": "g-new", "email": "fresh@example.com",
                            "email_verified": False, "name": "Fresh"}
    st, _, body = sign_in(srv, "google")
    assert st == 200, body
    assert body["user"]["email"] == "fresh@example.com"
    assert body["user"]["verified"] is False


def test_no_email_at_all(srv, fake):
    fake.users["github"] = {"id": 3003, "login": "ghost"}
    fake.emails = []
    st, _, err = sign_in(srv, "github")
    assert st == 401 and err["error"]["details"]["reason"] == "email"


def test_bad_and_replayed_state(srv, fake):
    fake.users["github"] = {"id": 4004, "login": "rep",
                            "email": "rep@example.com"}
    fake.emails = [{"email": "rep@example.com", "primary": True,
                    "verified": True}]
    for q in ("code=abc&state=forged", "code=abc", "state=&code=abc"):
        st, h, err = srv.json("GET", "/api/auth/oauth/github/callback?" + q)
        assert st == 401, err
        assert err["error"]["details"] == {"provider": "github",
                                           "reason": "state"}
    cb = consent(srv, "github")
    st, _, body = callback(srv, cb)
    assert st == 200, body
    # The same callback again: the state is spent.
    st, _, err = callback(srv, cb)
    assert st == 401 and err["error"]["details"]["reason"] == "state"
    # A state for google is no good for github.
    gq = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        start(srv, "google")).query))
    st, _, err = srv.json("GET", "/api/auth/oauth/github/callback?code=x&"
                          "state=" + gq["state"])
    assert st == 401 and err["error"]["details"]["reason"] == "state"
    # A valid state without a code.
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        start(srv, "github")).query))
    st, _, err = srv.json("GET", "/api/auth/oauth/github/callback?state=" +
                          q["state"])
    assert st == 422, err


def test_replayed_code(srv, fake):
    fake.users["github"] = {"id": 5005, "login": "code",
                            "email": "code@example.com"}
    fake.emails = [{"email": "code@example.com", "primary": True,
                    "verified": True}]
    cb = consent(srv, "github")
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb).query))[
        "code"]
    st, _, _ = callback(srv, cb)
    assert st == 200
    # A fresh state with the spent code: the provider refuses it.
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        start(srv, "github")).query))["state"]
    st, _, err = srv.json("GET", "/api/auth/oauth/github/callback?code=%s&"
                          "state=%s" % (code, state))
    assert st == 401, err
    assert err["error"]["details"] == {"provider": "github",
                                       "reason": "code"}
    # Google reports it with HTTP 400.
    fake.users["google"] = {"sub": "g-code", "email": "gc@example.com",
                            "email_verified": True}
    cb = consent(srv, "google")
    assert callback(srv, cb)[0] == 200
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(cb).query))[
        "code"]
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        start(srv, "google")).query))["state"]
    st, _, err = srv.json("GET", "/api/auth/oauth/google/callback?code=%s&"
                          "state=%s" % (code, state))
    assert st == 401 and err["error"]["details"]["reason"] == "code"


def test_provider_errors_and_timeouts(srv, fake):
    fake.users["github"] = {"id": 6006, "login": "err",
                            "email": "err@example.com"}
    try:
        fake.mode["github"] = "token500"
        st, _, err = sign_in(srv, "github")
        assert st == 503 and err["error"]["code"] == "UNAVAILABLE", err
        assert err["error"]["details"] == {"provider": "github",
                                           "reason": "token"}
        fake.mode["github"] = "garbage"
        st, _, err = sign_in(srv, "github")
        assert st == 503 and err["error"]["code"] == "UNAVAILABLE", err
        assert err["error"]["details"]["reason"] == "bad_response"
        fake.mode["github"] = "slow"
        t0 = time.time()
        st, _, err = sign_in(srv, "github")
        assert st == 504 and err["error"]["code"] == "TIMEOUT", err
        assert err["error"]["details"]["reason"] == "timeout"
        assert time.time() - t0 < 2.9 * SLOW
        # While one sign-in waits on the provider, the server answers.
        fake.mode["github"] = "slow_user"
        cb = consent(srv, "github")
        import threading
        res = {}
        th = threading.Thread(target=lambda: res.update(
            r=callback(srv, cb)))
        th.start()
        time.sleep(0.2)
        t1 = time.time()
        assert srv.json("GET", "/health/live")[0] == 200
        assert time.time() - t1 < 0.5 * SLOW
        th.join()
        assert res["r"][0] == 504
    finally:
        fake.mode.clear()
    # The user declined at the provider.
    st, _, err = srv.json("GET", "/api/auth/oauth/github/callback?"
                          "error=access_denied&state=x")
    assert st == 401 and err["error"]["details"]["reason"] == "denied"


def test_frontend_redirect_and_redirect_url(tmp_path, fake):
    cfg = config(fake.url, "    frontend_url: https://app.test/signed-in\n"
                 "    redirect_url: https://api.test/api/auth/oauth/"
                 "{provider}/callback\n")
    s = Server(make_project(tmp_path, cfg))
    try:
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            start(s, "github")).query))
        assert q["redirect_uri"] == \
            "https://api.test/api/auth/oauth/github/callback"
        fake.users["github"] = {"id": 7007, "login": "front",
                                "email": "front@example.com"}
        fake.emails = [{"email": "front@example.com", "primary": True,
                        "verified": True}]
        cb = urllib.parse.urlsplit(consent(s, "github"))
        assert cb.netloc == "api.test"
        st, h, _ = s.request("GET", cb.path + "?" + cb.query)
        assert st == 302
        loc = urllib.parse.urlsplit(h["location"])
        assert (loc.scheme, loc.netloc, loc.path) == (
            "https", "app.test", "/signed-in")
        assert loc.query == ""
        frag = dict(urllib.parse.parse_qsl(loc.fragment))
        assert frag["token_type"] == "Bearer" and frag["expires_in"] == "900"
        st, _, me = s.json("GET", "/api/auth/me", headers={
            "Authorization": "Bearer " + frag["access_token"]})
        assert st == 200 and me["email"] == "front@example.com"
        assert s.json("POST", "/api/auth/refresh", {
            "refresh_token": frag["refresh_token"]})[0] == 200
        # Errors go to the frontend too.
        st, h, _ = s.request("GET", "/api/auth/oauth/github/callback?"
                             "code=x&state=forged")
        assert st == 302
        frag = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            h["location"]).fragment))
        assert frag["error"] == "UNAUTHORIZED"
        assert "state" in frag["error_description"]
    finally:
        assert s.stop() == 0


def test_openapi_lists_every_auth_route(srv):
    st, _, doc = srv.json("GET", "/api/openapi.json")
    assert st == 200
    want = {
        "/api/auth/register": "post", "/api/auth/login": "post",
        "/api/auth/refresh": "post", "/api/auth/logout": "post",
        "/api/auth/me": "get", "/api/auth/request-verification": "post",
        "/api/auth/verify": "post",
        "/api/auth/request-password-reset": "post",
        "/api/auth/confirm-password-reset": "post",
        "/api/auth/providers": "get",
        "/api/auth/oauth/{provider}": "get",
        "/api/auth/oauth/{provider}/callback": "get"}
    for path, method in want.items():
        assert list(doc["paths"][path]) == [method], path
        op = doc["paths"][path][method]
        assert op["tags"] == ["auth"] and op["operationId"]
        assert "500" in op["responses"]
    assert doc["paths"]["/api/auth/me"]["get"]["security"] == [
        {"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"][
        "scheme"] == "bearer"
    assert "429" in doc["paths"]["/api/auth/login"]["post"]["responses"]
    cb = doc["paths"]["/api/auth/oauth/{provider}/callback"]["get"]
    assert {p["name"] for p in cb["parameters"]} == {
        "provider", "code", "state", "error"}
    # Every reference resolves.
    refs = []

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "$ref":
                    refs.append(v)
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(doc)
    for r in refs:
        node = doc
        for part in r[2:].split("/"):
            node = node[part]
