"""Rules on every door over HTTP (issue 5): the blog's own rules end to end
with three users (author, reader, admin), attempts to read past a rule
(filter, sort, expand, fields, batch, totals, cursors), SQL injection
through every query parameter, and bad tokens on every data route."""
import base64
import hashlib
import hmac
import json
import time
import urllib.parse

import pytest

from conftest import DEFAULT_CONFIG, TEST_SECRET, Server, make_project

# More sign-ups than the default 3/minute from one address.
CONFIG = DEFAULT_CONFIG + """auth:
  jwt:
    secret: %s
  rate_limit:
    register: 100/minute
    login: 100/minute
""" % TEST_SECRET


@pytest.fixture(scope="module")
def blog(tmp_path_factory):
    s = Server(make_project(tmp_path_factory.mktemp("rules"), config=CONFIG,
                            rules="blog"))
    w = {"s": s}
    w["author"] = s.sign_in("author@example.com")
    w["reader"] = s.sign_in("reader@example.com")
    w["admin"] = s.admin_headers()
    for who in ("author", "reader", "admin"):
        st, _, me = s.json("GET", "/api/auth/me", headers=w[who])
        assert st == 200, me
        w[who + "_id"] = me["id"]
    # The author's posts: 6 published, 4 drafts; a comment by the reader.
    w["posts"] = []
    for i in range(10):
        st, _, d = s.json("POST", "/api/collections/posts", {
            "title": "Post %d" % i, "slug": "post-%d" % i,
            "content": "draft body %d" % i if i >= 6 else "body %d" % i,
            "author_id": w["author_id"], "published": i < 6,
            "view_count": i}, headers=w["author"])
        assert st == 201, d
        w["posts"].append(d["id"])
    w["drafts"] = w["posts"][6:]
    st, _, c = s.json("POST", "/api/collections/comments", {
        "post_id": w["posts"][0], "author_id": w["reader_id"],
        "content": "nice"}, headers=w["reader"])
    assert st == 201, c
    yield w
    assert s.stop() == 0


def q(w, path, who=None, method="GET", body=None):
    h = w[who] if who else None
    return w["s"].json(method, path, body, headers=h)


def test_three_users_read_what_the_rules_allow(blog):
    w = blog
    # Anonymous: published posts only; the total agrees.
    st, _, b = q(w, "/api/collections/posts?total=true&limit=3")
    assert st == 200 and b["total"] == 6 and len(b["docs"]) == 3
    # The reader: the same.  The author: all ten.  The admin: all ten.
    assert q(w, "/api/collections/posts?total=true", "reader")[2][
        "total"] == 6
    assert q(w, "/api/collections/posts?total=true", "author")[2][
        "total"] == 10
    assert q(w, "/api/collections/posts?total=true", "admin")[2][
        "total"] == 10
    draft = w["drafts"][0]
    # A draft is 404 for others, with the same error as a missing id.
    st, _, b = q(w, "/api/collections/posts/" + draft, "reader")
    assert st == 404 and b["error"]["code"] == "NOT_FOUND"
    st2, _, b2 = q(w, "/api/collections/posts/"
                   "00000000-0000-4000-8000-000000000000", "reader")
    assert st2 == 404
    assert b["error"]["message"].split("'")[0] == \
        b2["error"]["message"].split("'")[0]
    assert q(w, "/api/collections/posts/" + draft)[0] == 404
    assert q(w, "/api/collections/posts/" + draft, "author")[0] == 200
    assert q(w, "/api/collections/posts/" + draft, "admin")[0] == 200
    # users: yourself, or everyone for the admin.
    assert q(w, "/api/collections/users?total=true", "reader")[2][
        "total"] == 1
    assert q(w, "/api/collections/users?total=true", "admin")[2][
        "total"] == 3
    assert q(w, "/api/collections/users?total=true")[2]["total"] == 0
    assert q(w, "/api/collections/users/" + w["author_id"],
             "reader")[0] == 404


def test_writes_follow_the_rules(blog):
    w = blog
    post = {"title": "T", "slug": "t-anon", "content": "c",
            "author_id": w["reader_id"]}
    st, _, b = q(w, "/api/collections/posts", method="POST", body=post)
    assert st == 403 and b["error"]["code"] == "FORBIDDEN"
    assert b["error"]["details"] == {"collection": "posts",
                                     "operation": "create"}
    pub = w["posts"][1]
    st, _, b = q(w, "/api/collections/posts/" + pub, "reader", "PATCH",
                 {"title": "hijacked"})
    assert st == 403
    # A draft the reader cannot see: 404, not 403.
    st, _, b = q(w, "/api/collections/posts/" + w["drafts"][1], "reader",
                 "PATCH", {"title": "hijacked"})
    assert st == 404
    assert q(w, "/api/collections/posts/" + pub, "reader", "DELETE")[0] \
        == 403
    assert q(w, "/api/collections/posts/" + pub, method="DELETE")[0] == 403
    assert q(w, "/api/collections/posts/" + pub)[2]["title"] == "Post 1"
    # The author edits; the admin edits anyone's.
    st, _, b = q(w, "/api/collections/posts/" + pub, "author", "PATCH",
                 {"title": "Edited"})
    assert st == 200 and b["title"] == "Edited"
    st, _, b = q(w, "/api/collections/posts/" + pub, "admin", "PATCH",
                 {"title": "Post 1"})
    assert st == 200
    # users.update is "auth.id == doc.id": the reader renames himself,
    # not the author; the account role is not the document's.
    st, _, b = q(w, "/api/collections/users/" + w["reader_id"], "reader",
                 "PATCH", {"name": "Reader"})
    assert st == 200 and b["name"] == "Reader"
    assert q(w, "/api/collections/users/" + w["author_id"], "reader",
             "PATCH", {"name": "x"})[0] == 404
    # A post created by the reader in the author's name, as a draft: it
    # is created (create rule: signed in) but he cannot read it back, so
    # the answer holds only its id.
    st, _, b = q(w, "/api/collections/posts", "reader", "POST",
                 {"title": "Ghost", "slug": "ghost", "content": "ghost body",
                  "author_id": w["author_id"]})
    assert st == 201 and list(b) == ["id"]
    assert q(w, "/api/collections/posts/" + b["id"], "author", "DELETE")[
        0] == 204


def test_filter_sort_fields_expand_total_cannot_see_past_the_rule(blog):
    w = blog
    enc = urllib.parse.quote
    probes = [
        "filter=published:eq:false",
        "filter=content:like:" + enc("draft%"),
        "filter=title:in:Post%206,Post%207,Post%208",
        "filter=view_count:gte:6",
        "sort=-view_count&limit=1&filter=view_count:gt:5",
        "fields=id,title&filter=published:ne:true",
        "filter=author_id:eq:%s&filter=published:eq:false" %
        w["author_id"],
    ]
    for p in probes:
        for who in (None, "reader"):
            st, _, b = q(w, "/api/collections/posts?total=true&" + p, who)
            assert st == 200, (p, b)
            assert b["total"] == 0 and b["docs"] == [], (p, who, b)
    # Sorting the visible documents: only published ones, full pages.
    st, _, b = q(w, "/api/collections/posts?sort=-view_count&limit=2",
                 "reader")
    assert [d["view_count"] for d in b["docs"]] == [5, 4]
    seen, after = [], None
    while True:
        path = "/api/collections/posts?sort=-view_count&limit=4"
        if after:
            path += "&after=" + enc(after)
        st, _, b = q(w, path, "reader")
        seen += [d["view_count"] for d in b["docs"]]
        after = b.get("next")
        if not after:
            break
        assert len(b["docs"]) == 4
    assert seen == [5, 4, 3, 2, 1, 0]
    # Expand: comments are public, users are not.
    st, _, b = q(w, "/api/collections/comments?expand=author_id,post_id")
    d = b["docs"][0]
    assert d["author_id"] == w["reader_id"]
    assert d["expand"]["author_id"] is None
    assert d["expand"]["post_id"]["id"] == w["posts"][0]
    st, _, b = q(w, "/api/collections/comments?expand=author_id", "reader")
    assert b["docs"][0]["expand"]["author_id"]["email"] == \
        "reader@example.com"
    st, _, b = q(w, "/api/collections/posts/%s?expand=author_id" %
                 w["posts"][0], "reader")
    assert b["expand"]["author_id"] is None
    st, _, b = q(w, "/api/collections/posts/%s?expand=author_id" %
                 w["posts"][0], "author")
    assert b["expand"]["author_id"]["email"] == "author@example.com"


def test_batch_is_checked_op_by_op_all_or_nothing(blog):
    w = blog
    before = q(w, "/api/collections/posts?total=true", "admin")[2]["total"]
    batch = {"requests": [
        {"method": "POST", "url": "/api/collections/posts",
         "body": {"title": "B", "slug": "batch-b", "content": "c",
                  "author_id": w["reader_id"], "published": True}},
        {"method": "DELETE", "url": "/api/collections/posts/" +
         w["posts"][2]}]}
    st, _, b = q(w, "/api/batch", "reader", "POST", batch)
    assert st == 403 and b["error"]["details"]["index"] == 1
    st, _, b = q(w, "/api/batch", None, "POST", batch)
    assert st == 403 and b["error"]["details"]["index"] == 0
    # A hidden draft in a batch is not found.
    st, _, b = q(w, "/api/batch", "reader", "POST", {"requests": [
        {"method": "PATCH", "url": "/api/collections/posts/" +
         w["drafts"][2], "body": {"title": "x"}}]})
    assert st == 404 and b["error"]["details"]["index"] == 0
    assert q(w, "/api/collections/posts?total=true", "admin")[2][
        "total"] == before
    st, _, b = q(w, "/api/batch", "reader", "POST", {"requests": [
        batch["requests"][0]]})
    assert st == 200 and b["results"][0]["status"] == 201
    assert q(w, "/api/collections/posts/" + b["results"][0]["body"]["id"],
             "reader", "DELETE")[0] == 204


INJECTIONS = [
    "' OR '1'='1", "1 OR 1=1", "\" OR \"\"=\"", "x'; DROP TABLE posts; --",
    "published) OR (1=1", "1; DELETE FROM posts", "%' --", "\\",
    "' UNION SELECT email, role FROM _alyx_users --", "0x27",
]


def test_sql_injection_through_every_parameter(blog):
    w = blog
    enc = urllib.parse.quote
    total = q(w, "/api/collections/posts?total=true", "admin")[2]["total"]
    paths = []
    for x in INJECTIONS:
        e = enc(x, safe="")
        paths += [
            "filter=title:eq:" + e, "filter=" + e + ":eq:1",
            "filter=title:" + e + ":1", "filter=title:in:a," + e,
            "filter=title:like:" + e, "filter=view_count:gt:" + e,
            "sort=" + e, "sort=-" + e, "limit=" + e, "offset=" + e,
            "after=" + e, "expand=" + e, "fields=" + e, "fields=id," + e,
            "total=" + e, e + "=1",
        ]
    for p in paths:
        for who in (None, "reader"):
            st, _, b = q(w, "/api/collections/posts?" + p, who)
            assert st in (200, 400), (p, st, b)
            if st == 400:
                assert b["error"]["code"] == "INVALID_QUERY", (p, b)
            else:
                # Whatever matched, nothing hidden: published posts only.
                assert all(d.get("published", True) for d in b["docs"]), p
                assert all("password" not in json.dumps(d) and
                           "_alyx" not in json.dumps(d)
                           for d in b["docs"]), p
    for x in INJECTIONS:
        e = enc(x, safe="")
        assert q(w, "/api/collections/posts/" + e, "reader")[0] == 404
        assert q(w, "/api/collections/" + e, "reader")[0] == 404
        st, _, b = q(w, "/api/collections/posts?expand=" + e, "reader")
        assert st == 400
    # Nothing was dropped or deleted; the tables answer as before.
    assert q(w, "/api/collections/posts?total=true", "admin")[2][
        "total"] == total
    assert q(w, "/api/collections/users?total=true", "admin")[2][
        "total"] == 3


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(payload, secret=TEST_SECRET, alg="HS256", sign=True):
    head = b64({"alg": alg, "typ": "JWT"}) + "." + b64(payload)
    if not sign:
        return head + "."
    mac = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64(mac)


def test_bad_tokens_are_401_on_every_data_route(blog):
    w = blog
    now = int(time.time())
    sub = w["author_id"]
    good = {"iss": "alyx", "sub": sub, "role": "user", "iat": now,
            "exp": now + 600}
    # Our own construction is right: a well-made token works.
    assert q(w, "/api/collections/posts/" + w["drafts"][0],
             method="GET", body=None)[0] == 404
    h = {"Authorization": "Bearer " + jwt(good)}
    assert w["s"].json("GET", "/api/collections/posts/" + w["drafts"][0],
                       headers=h)[0] == 200
    signed = jwt(good).split(".")
    bad = {
        "forged": jwt(good, secret="another-secret-another-secret-0123"),
        "expired": jwt(dict(good, iat=now - 7200, exp=now - 3600)),
        "wrong issuer": jwt(dict(good, iss="someone-else")),
        "alg none": jwt(good, alg="none", sign=False),
        "alg none signed": jwt(good, alg="none"),
        "HS512": jwt(good, alg="HS512"),
        "tampered role": signed[0] + "." + b64(dict(good, role="admin")) +
        "." + signed[2],
        "no sub": jwt({k: v for k, v in good.items() if k != "sub"}),
        "unknown user": jwt(dict(good, sub="nobody")),
        "garbage": "not-a-token",
        "empty": "",
    }
    routes = [
        ("GET", "/api/collections/posts", None),
        ("GET", "/api/collections/posts/" + w["posts"][0], None),
        ("POST", "/api/collections/posts",
         {"title": "x", "slug": "x-tok", "content": "c", "author_id": sub}),
        ("PATCH", "/api/collections/posts/" + w["posts"][0], {"title": "x"}),
        ("DELETE", "/api/collections/posts/" + w["posts"][0], None),
        ("POST", "/api/batch", {"requests": []}),
    ]
    for name, tok in bad.items():
        for method, path, body in routes:
            st, hd, b = w["s"].json(method, path, body, headers={
                "Authorization": "Bearer " + tok})
            assert st == 401, (name, method, path, st, b)
            assert b["error"]["code"] == "UNAUTHORIZED"
            assert hd.get("www-authenticate") == "Bearer"
    for auth in ("Basic YWRtaW46YWRtaW4=", "Token abc", "Bearer"):
        st, _, b = w["s"].json("GET", "/api/collections/posts",
                               headers={"Authorization": auth})
        assert st == 401, (auth, b)
    # Nothing was written by any of them.
    assert q(w, "/api/collections/posts/" + w["posts"][0])[2]["title"] \
        == "Post 0"


def test_token_cache_follows_account_changes_within_a_second(blog):
    """A verified token is cached per service thread for 1 s: a role
    change or a deleted account reaches it within that second."""
    import sqlite3
    w = blog
    s = w["s"]
    h = s.sign_in("fleeting@example.com")
    draft = w["drafts"][3]
    assert s.json("GET", "/api/collections/posts/" + draft,
                  headers=h)[0] == 404
    db = sqlite3.connect(str(s.proj / "data" / "alyx.db"), timeout=30)
    with db:
        db.execute("UPDATE _alyx_users SET role='admin' WHERE email=?",
                   ("fleeting@example.com",))
    time.sleep(1.2)
    assert s.json("GET", "/api/collections/posts/" + draft,
                  headers=h)[0] == 200
    with db:
        db.execute("DELETE FROM users WHERE email=?",
                   ("fleeting@example.com",))
        db.execute("DELETE FROM _alyx_users WHERE email=?",
                   ("fleeting@example.com",))
    db.close()
    time.sleep(1.2)
    st, _, b = s.json("GET", "/api/collections/posts", headers=h)
    assert st == 401 and b["error"]["code"] == "UNAUTHORIZED"


REQUEST_SCHEMA = """\
version: 1
collections:
  pings:
    fields:
      id: {type: uuid, primary: true, default: auto}
      n: {type: int}
      secret: {type: string, nullable: true, internal: true}
    rules:
      create: "request.ip == '127.0.0.1' && request.method == 'POST' && request.body.n < 10"
      read: "request.ip == '127.0.0.1' && request.method == 'GET' && doc.n >= 0"
      update: "request.method == 'PATCH' && request.body.n > doc.n"
      delete: "request.ip == '10.9.9.9'"
"""


def test_request_variable_over_http(tmp_path):
    """request.method, request.ip (the TCP peer) and request.body reach the
    rules of every door, reads and queued writes alike."""
    s = Server(make_project(tmp_path, config=CONFIG, schema=REQUEST_SCHEMA,
                            rules="as-is"))
    try:
        st, _, d = s.json("POST", "/api/collections/pings", {"n": 3})
        assert st == 201, d
        assert s.json("POST", "/api/collections/pings", {"n": 30})[0] == 403
        assert s.json("GET", "/api/collections/pings/" + d["id"])[0] == 200
        st, _, b = s.json("GET", "/api/collections/pings?total=true")
        assert st == 200 and b["total"] == 1
        path = "/api/collections/pings/" + d["id"]
        assert s.json("PATCH", path, {"n": 2})[0] == 403
        st, _, b = s.json("PATCH", path, {"n": 4})
        assert st == 200 and b["n"] == 4
        assert s.json("DELETE", path)[0] == 403
        # In a batch the method is each request's own.
        st, _, b = s.json("POST", "/api/batch", {"requests": [
            {"method": "POST", "url": "/api/collections/pings",
             "body": {"n": 1}},
            {"method": "PATCH", "url": path, "body": {"n": 5}}]})
        assert st == 200, b
        # Internal fields cannot be written over HTTP.
        st, _, b = s.json("POST", "/api/collections/pings",
                          {"n": 1, "secret": "x"})
        assert st == 422 and b["error"]["details"]["fields"][0]["code"] \
            == "internal"
    finally:
        assert s.stop() == 0


def test_openapi_describes_tokens_and_denials(blog):
    st, _, doc = blog["s"].json("GET", "/api/openapi.json")
    assert st == 200
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert {} in doc["security"] and {"bearerAuth": []} in doc["security"]
    posts = doc["paths"]["/api/collections/posts"]
    assert "401" in posts["get"]["responses"]
    assert {"401", "403"} <= set(posts["post"]["responses"])
    one = doc["paths"]["/api/collections/posts/{id}"]
    assert {"401", "403", "404"} <= set(one["patch"]["responses"])
    assert {"401", "403", "404"} <= set(one["delete"]["responses"])
    for name in ("Unauthorized", "Forbidden"):
        assert name in doc["components"]["responses"]
