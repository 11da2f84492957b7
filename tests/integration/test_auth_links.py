"""Email verification and password reset over HTTP (docs/auth.md): one-time,
expiring, single-use tokens; links to a webhook (a fake receiver on
loopback) or, in dev mode, to the log; no user enumeration; the
password_reset rate limit; reset revokes sessions."""
import base64
import hashlib
import hmac
import re
import sqlite3
import time
import urllib.parse

import pytest

from conftest import DEFAULT_CONFIG, SLOW, Server, make_project
from fakeprovider import Fake

SECRET = "links-test-secret-0123456789abcdefghij"
PW = "Correct-Horse-9"
NEW_PW = "Battery-Staple-7"


def config(fake_url, extra=""):
    return DEFAULT_CONFIG + """\
auth:
  jwt:
    secret: %s
  email:
    webhook: %s/hook
    verify_url: https://app.test/verify
    reset_url: https://app.test/reset?lang=en
%s""" % (SECRET, fake_url, extra)


@pytest.fixture(scope="module")
def fake():
    f = Fake()
    yield f
    f.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, fake):
    proj = make_project(tmp_path_factory.mktemp("links"), config(
        fake.url, "  rate_limit:\n    login: 1000/minute\n"
        "    register: 1000/minute\n    password_reset: 1000/hour\n"))
    s = Server(proj)
    yield s
    assert s.stop() == 0


def register(srv, email):
    st, _, body = srv.json("POST", "/api/auth/register",
                           {"email": email, "password": PW, "name": "N"})
    assert st == 201, body
    return body


def hook_for(fake, email, kind, timeout=10):
    """The newest webhook body for email and kind (waits for it)."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        with fake.lock:
            found = [h for h in fake.hooks
                     if h["body"]["email"] == email and
                     h["body"]["type"] == kind]
        if found:
            return found[-1]
        time.sleep(0.02)
    raise AssertionError("no %s webhook for %s: %r" % (kind, email,
                                                       fake.hooks))


def hooks_for(fake, email):
    with fake.lock:
        return [h for h in fake.hooks if h["body"]["email"] == email]


def token_of(link):
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    return q["token"][0]


def db(srv):
    return sqlite3.connect(str(srv.proj / "data" / "alyx.db"))


def test_verification_flow(srv, fake):
    reg = register(srv, "vera@example.com")
    assert reg["user"]["verified"] is False
    st, h, body = srv.json("POST", "/api/auth/request-verification",
                           {"email": "Vera@Example.com"})
    assert st == 202 and h["cache-control"] == "no-store"
    assert "message" in body
    hook = hook_for(fake, "vera@example.com", "email_verification")
    assert hook["content_type"] == "application/json"
    # No webhook_secret configured: nothing is signed.
    assert not any(k.startswith("webhook-") for k in hook["headers"])
    b = hook["body"]
    assert b["user_id"] == reg["user"]["id"]
    assert b["link"].startswith("https://app.test/verify?token=")
    assert token_of(b["link"]) == b["token"] and len(b["token"]) == 43
    assert b["expires_at"].endswith("Z")
    # Only a hash is stored.
    con = db(srv)
    rows = [r[0] for r in con.execute(
        "SELECT token_hash FROM _alyx_auth_tokens WHERE kind='verify'")]
    con.close()
    assert b["token"] not in rows and len(rows) >= 1
    st, _, user = srv.json("POST", "/api/auth/verify", {"token": b["token"]})
    assert st == 200, user
    assert user["verified"] is True and user["email"] == "vera@example.com"
    # auth.verified end to end: the account, the users document, /me.
    con = db(srv)
    assert con.execute("SELECT verified FROM _alyx_users WHERE id=?",
                       (user["id"],)).fetchone()[0] == 1
    con.close()
    st, _, me = srv.json("GET", "/api/auth/me", headers={
        "Authorization": "Bearer " + reg["access_token"]})
    assert st == 200 and me["verified"] is True
    # Single use.
    st, _, err = srv.json("POST", "/api/auth/verify", {"token": b["token"]})
    assert st == 422 and err["error"]["code"] == "VALIDATION_ERROR"
    assert err["error"]["details"]["fields"][0] == {
        "field": "token", "code": "invalid",
        "message": "invalid or expired token"}
    # Verified accounts get no more links, but the answer is the same.
    n = len(hooks_for(fake, "vera@example.com"))
    st, _, body2 = srv.json("POST", "/api/auth/request-verification",
                            {"email": "vera@example.com"})
    assert st == 202 and body2 == body
    time.sleep(0.3)
    assert len(hooks_for(fake, "vera@example.com")) == n


def test_no_enumeration(srv, fake):
    register(srv, "known@example.com")
    for route in ("/api/auth/request-verification",
                  "/api/auth/request-password-reset"):
        a = srv.json("POST", route, {"email": "known@example.com"})
        b = srv.json("POST", route, {"email": "nobody@example.com"})
        assert a[0] == b[0] == 202
        assert a[2] == b[2]
        assert a[1]["content-length"] == b[1]["content-length"]
    hook_for(fake, "known@example.com", "password_reset")
    time.sleep(0.3)
    assert hooks_for(fake, "nobody@example.com") == []


def test_request_errors(srv):
    for body, status, code in (
            ({}, 422, "VALIDATION_ERROR"),
            ({"email": "not-an-email"}, 422, "VALIDATION_ERROR"),
            ({"email": 5}, 422, "VALIDATION_ERROR"),
            ([], 400, "INVALID_JSON")):
        for route in ("/api/auth/request-verification",
                      "/api/auth/request-password-reset"):
            st, _, err = srv.json("POST", route, body)
            assert st == status and err["error"]["code"] == code, err
    st, _, err = srv.request("POST", "/api/auth/verify", "{",
                             {"Content-Type": "application/json"})
    assert st == 400
    for body in ({}, {"token": ""}, {"token": 7}):
        st, _, err = srv.json("POST", "/api/auth/verify", body)
        assert st == 422 and err["error"]["details"]["fields"][0][
            "field"] == "token", err
    st, _, err = srv.json("POST", "/api/auth/verify", {"token": "x" * 500})
    assert st == 422 and err["error"]["details"]["fields"][0][
        "code"] == "invalid"
    st, _, _ = srv.json("GET", "/api/auth/verify")
    assert st == 405


def test_password_reset_flow(srv, fake):
    reg = register(srv, "rosa@example.com")
    # A second session that the reset must end too.
    st, _, login = srv.json("POST", "/api/auth/login",
                            {"email": "rosa@example.com", "password": PW})
    assert st == 200
    st, _, _ = srv.json("POST", "/api/auth/request-password-reset",
                        {"email": "rosa@example.com"})
    assert st == 202
    b = hook_for(fake, "rosa@example.com", "password_reset")["body"]
    assert b["link"].startswith("https://app.test/reset?lang=en&token=")
    tok = b["token"]
    # A verification token is not a reset token (and the reverse).
    st, _, _ = srv.json("POST", "/api/auth/verify", {"token": tok})
    assert st == 422
    # A refused password leaves the token usable.
    st, _, err = srv.json("POST", "/api/auth/confirm-password-reset",
                          {"token": tok, "password": "short"})
    assert st == 422
    assert err["error"]["details"]["fields"][0]["field"] == "password"
    st, _, err = srv.json("POST", "/api/auth/confirm-password-reset",
                          {"token": tok})
    assert st == 422
    st, _, _ = srv.json("POST", "/api/auth/confirm-password-reset",
                        {"token": tok, "password": NEW_PW})
    assert st == 204
    # Single use.
    st, _, err = srv.json("POST", "/api/auth/confirm-password-reset",
                          {"token": tok, "password": NEW_PW})
    assert st == 422 and err["error"]["details"]["fields"][0][
        "code"] == "invalid"
    # Every refresh session is gone; the old password is refused.
    for rt in (reg["refresh_token"], login["refresh_token"]):
        st, _, _ = srv.json("POST", "/api/auth/refresh",
                            {"refresh_token": rt})
        assert st == 401
    st, _, _ = srv.json("POST", "/api/auth/login",
                        {"email": "rosa@example.com", "password": PW})
    assert st == 401
    st, _, body = srv.json("POST", "/api/auth/login",
                           {"email": "rosa@example.com",
                            "password": NEW_PW})
    assert st == 200
    # The link proved the mailbox.
    assert body["user"]["verified"] is True


def test_newer_link_replaces_older(srv, fake):
    register(srv, "twice@example.com")
    srv.json("POST", "/api/auth/request-password-reset",
             {"email": "twice@example.com"})
    first = hook_for(fake, "twice@example.com", "password_reset")
    srv.json("POST", "/api/auth/request-password-reset",
             {"email": "twice@example.com"})
    deadline = time.time() + 10 * SLOW
    while len(hooks_for(fake, "twice@example.com")) < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    second = hook_for(fake, "twice@example.com", "password_reset")
    assert second["body"]["token"] != first["body"]["token"]
    st, _, _ = srv.json("POST", "/api/auth/confirm-password-reset",
                        {"token": first["body"]["token"],
                         "password": NEW_PW})
    assert st == 422
    st, _, _ = srv.json("POST", "/api/auth/confirm-password-reset",
                        {"token": second["body"]["token"],
                         "password": NEW_PW})
    assert st == 204


def test_expired_tokens(tmp_path, fake):
    proj = make_project(tmp_path, config(
        fake.url, "  rate_limit:\n    register: 1000/minute\n"
        "    password_reset: 1000/hour\n").replace(
        "    reset_url: https://app.test/reset?lang=en\n",
        "    reset_url: https://app.test/reset\n    reset_ttl: 1s\n"
        "    verify_ttl: 1s\n"))
    s = Server(proj)
    try:
        register(s, "late@example.com")
        s.json("POST", "/api/auth/request-password-reset",
               {"email": "late@example.com"})
        s.json("POST", "/api/auth/request-verification",
               {"email": "late@example.com"})
        r = hook_for(fake, "late@example.com", "password_reset")["body"]
        v = hook_for(fake, "late@example.com", "email_verification")["body"]
        time.sleep(1.2)
        st, _, _ = s.json("POST", "/api/auth/confirm-password-reset",
                          {"token": r["token"], "password": NEW_PW})
        assert st == 422
        st, _, _ = s.json("POST", "/api/auth/verify", {"token": v["token"]})
        assert st == 422
    finally:
        assert s.stop() == 0


def test_password_reset_rate_limit_default(tmp_path, fake):
    """The seed's 3/hour, per email and per address, with Retry-After;
    request-verification counts separately."""
    proj = make_project(tmp_path, config(fake.url))
    s = Server(proj)
    try:
        for i in range(3):
            st, _, _ = s.json("POST", "/api/auth/request-password-reset",
                              {"email": "rl%d@example.com" % i})
            assert st == 202
        st, h, err = s.json("POST", "/api/auth/request-password-reset",
                            {"email": "other@example.com"})
        assert st == 429 and err["error"]["code"] == "RATE_LIMITED"
        assert 3000 < int(h["retry-after"]) <= 3600
        st, _, _ = s.json("POST", "/api/auth/request-verification",
                          {"email": "rl0@example.com"})
        assert st == 202
    finally:
        assert s.stop() == 0


def test_configured_rate_and_failing_webhook(tmp_path, fake):
    """password_reset: 1/minute from alyx.yaml; a webhook that fails is
    logged, and the answer does not change."""
    proj = make_project(tmp_path, config(
        fake.url, "  rate_limit:\n    register: 100/minute\n"
        "    password_reset: 1/minute\n"))
    s = Server(proj)
    fake.hook_status = 500
    try:
        register(s, "hookfail@example.com")
        st, _, _ = s.json("POST", "/api/auth/request-password-reset",
                          {"email": "hookfail@example.com"})
        assert st == 202
        st, h, _ = s.json("POST", "/api/auth/request-password-reset",
                          {"email": "hookfail2@example.com"})
        assert st == 429 and 0 < int(h["retry-after"]) <= 60
        deadline = time.time() + 10 * SLOW
        while not any(r.get("msg") == "email webhook failed"
                      for r in s.log_records()):
            assert time.time() < deadline, s.lines()
            time.sleep(0.05)
    finally:
        fake.hook_status = 200
        assert s.stop() == 0


# The Standard Webhooks form of a secret: whsec_ and base64 key bytes.
HOOK_KEY = bytes(range(7, 39))
HOOK_SECRET = "whsec_" + base64.b64encode(HOOK_KEY).decode()


def standard_webhooks_verify(key, hook, tolerance=300):
    """What a receiver does (standardwebhooks.com): the three headers,
    the timestamp near now, HMAC-SHA256 of id.timestamp.raw-body under the
    key, compared in constant time with each v1 signature."""
    h = hook["headers"]
    mid, ts, sigs = (h["webhook-id"], h["webhook-timestamp"],
                     h["webhook-signature"])
    assert abs(time.time() - int(ts)) <= tolerance, ts
    mac = hmac.new(key, mid.encode() + b"." + ts.encode() + b"." +
                   hook["raw"], hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(want, s) for s in sigs.split(" "))


def test_webhook_is_signed_with_the_configured_secret(tmp_path, fake):
    """auth.email.webhook_secret signs every POST the Standard Webhooks
    way: a fresh webhook-id per message, the send time, and a signature
    over id, time and the exact body that the key verifies and another
    key or a changed body does not."""
    proj = make_project(tmp_path, config(
        fake.url, "    webhook_secret: %s\n" % HOOK_SECRET))
    s = Server(proj)
    try:
        register(s, "signed@example.com")
        for path in ("/api/auth/request-verification",
                     "/api/auth/request-password-reset"):
            st, _, _ = s.json("POST", path, {"email": "signed@example.com"})
            assert st == 202
        hooks = [hook_for(fake, "signed@example.com", kind)
                 for kind in ("email_verification", "password_reset")]
        ids = set()
        for hook in hooks:
            h = hook["headers"]
            assert re.fullmatch(r"msg_[0-9a-f]{32}", h["webhook-id"]), h
            assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=",
                                h["webhook-signature"]), h
            ids.add(h["webhook-id"])
            assert standard_webhooks_verify(HOOK_KEY, hook)
            assert not standard_webhooks_verify(b"x" * 32, hook)
            forged = dict(hook, raw=hook["raw"].replace(b"signed@",
                                                        b"signer@"))
            assert not standard_webhooks_verify(HOOK_KEY, forged)
        assert len(ids) == 2
        # The secret never reaches the log.
        assert base64.b64encode(HOOK_KEY).decode() not in "\n".join(
            s.lines())
    finally:
        assert s.stop() == 0


def test_bad_webhook_secret_stops_the_start(tmp_path, fake):
    """A secret that is not whsec_ and base64 is a config error at start:
    a non-zero exit naming the key, nothing served."""
    proj = make_project(tmp_path, config(
        fake.url, "    webhook_secret: not-a-standard-secret\n"))
    s = Server(proj, wait=False)
    rc = s.proc.wait(timeout=20 * SLOW)
    out = "\n".join(s.lines())
    assert rc != 0
    assert "auth.email.webhook_secret" in out and "whsec_" in out, out


def test_dev_mode_link_goes_to_the_log(tmp_path):
    """Without a webhook a server logs a warning only; alyx dev (the
    ALYX_SERVER_DEV flag) logs the link itself - see tests/cli."""
    proj = make_project(tmp_path, DEFAULT_CONFIG)
    s = Server(proj)
    try:
        st, _, _ = s.json("POST", "/api/auth/register",
                          {"email": "nohook@example.com", "password": PW})
        assert st == 201
        st, _, _ = s.json("POST", "/api/auth/request-password-reset",
                          {"email": "nohook@example.com"})
        assert st == 202
        deadline = time.time() + 10 * SLOW
        while True:
            recs = [r for r in s.log_records()
                    if "link was not delivered" in r.get("msg", "")]
            if recs:
                break
            assert time.time() < deadline, s.lines()
            time.sleep(0.05)
        assert "token" not in str(recs) and "nohook" not in str(recs)
    finally:
        assert s.stop() == 0


NOTES_SCHEMA = """\
version: 1
collections:
  users:
    fields:
      id: {type: uuid, primary: true, default: auto}
      email: {type: string}
      name: {type: string, nullable: true}
      verified: {type: bool, default: false}
    rules:
      read: "auth.id == doc.id"
  notes:
    fields:
      id: {type: uuid, primary: true, default: auto}
      text: {type: string}
    rules:
      create: "auth.verified == true"
      read: "true"
"""


def test_auth_verified_in_rules_end_to_end(tmp_path, fake):
    """A rule on auth.verified: refused before the link, allowed right
    after (the context reads the account as stored now), and the users
    document's own `verified` field follows."""
    proj = make_project(tmp_path, config(
        fake.url, "  rate_limit:\n    register: 100/minute\n"
        "    password_reset: 100/hour\n"), schema=NOTES_SCHEMA,
        rules="own")
    s = Server(proj)
    try:
        reg = register(s, "rule@example.com")
        auth = {"Authorization": "Bearer " + reg["access_token"]}
        st, _, err = s.json("POST", "/api/collections/notes",
                            {"text": "hi"}, headers=auth)
        assert st == 403, err
        st, _, doc = s.json("GET", "/api/collections/users/" +
                            reg["user"]["id"], headers=auth)
        assert st == 200 and doc["verified"] is False
        s.json("POST", "/api/auth/request-verification",
               {"email": "rule@example.com"})
        tok = hook_for(fake, "rule@example.com",
                       "email_verification")["body"]["token"]
        assert s.json("POST", "/api/auth/verify", {"token": tok})[0] == 200
        # The same access token: verified now.
        deadline = time.time() + 5 * SLOW
        while True:
            st, _, body = s.json("POST", "/api/collections/notes",
                                 {"text": "hi"}, headers=auth)
            # (a server thread may hold the context for up to 1 s)
            if st == 201 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert st == 201, body
        st, _, doc = s.json("GET", "/api/collections/users/" +
                            reg["user"]["id"], headers=auth)
        assert st == 200 and doc["verified"] is True
    finally:
        assert s.stop() == 0
