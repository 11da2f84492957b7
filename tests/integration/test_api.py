"""Every route of the REST API, the error envelope and its status codes,
request ids and CORS, against a real alyxd (tests/fixtures/blog)."""
import json
import re
import uuid

from conftest import raw, status_of

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_error(st, h, body, status, code):
    assert st == status, (st, body)
    assert set(body) == {"error", "request_id", "timestamp"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["request_id"] == h["x-request-id"]
    assert ISO.match(body["timestamp"]), body["timestamp"]
    assert h["content-type"].startswith("application/json")


def new_user(server, **kw):
    doc = {"email": "u-%s@example.com" % uuid.uuid4().hex[:12],
           "name": "User"}
    doc.update(kw)
    st, h, body = server.json("POST", "/api/collections/users", doc)
    assert st == 201, body
    return body


def new_post(server, author, **kw):
    doc = {"title": "A post", "slug": "s-" + uuid.uuid4().hex[:12],
           "content": "Body text", "author_id": author["id"]}
    doc.update(kw)
    st, h, body = server.json("POST", "/api/collections/posts", doc)
    assert st == 201, body
    return body


def test_root(server):
    st, h, body = server.json("GET", "/")
    assert st == 200
    assert body["name"] == "alyx"
    assert re.match(r"^\d+\.\d+\.\d+", body["version"])
    assert h["x-request-id"]
    assert re.match(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} "
                    r"\d\d:\d\d:\d\d GMT$", h["date"])


def test_health_routes(server):
    st, _, body = server.json("GET", "/health")
    assert st == 200 and body["status"] == "ok"
    assert body["database"] == "ok"
    assert isinstance(body["uptime_s"], int)
    st, _, body = server.json("GET", "/health/live")
    assert st == 200 and body == {"status": "ok"}
    st, _, body = server.json("GET", "/health/ready")
    assert st == 200 and body == {"status": "ready"}
    st, _, body = server.json("GET", "/health/stats")
    assert st == 401 and body["error"]["code"] == "UNAUTHORIZED"
    st, _, body = server.json("GET", "/health/stats",
                              headers=server.sign_in("ops@example.com"))
    assert st == 403 and body["error"]["code"] == "FORBIDDEN"
    st, _, body = server.json("GET", "/health/stats",
                              headers=server.admin_headers())
    assert st == 200
    assert body["threads"] >= 1
    assert body["requests"] >= 1
    assert body["connections"]["open"] >= 1
    assert body["database"]["size_bytes"] > 0
    assert set(body["writer"]) >= {"queued", "transactions", "writes"}


def test_crud_roundtrip(server):
    u = new_user(server, name="Ada")
    assert uuid.UUID(u["id"])
    assert u["role"] == "user"          # default filled in
    assert ISO.match(u["created_at"])
    path = "/api/collections/users/" + u["id"]
    st, _, got = server.json("GET", path)
    assert st == 200 and got == u
    st, _, upd = server.json("PATCH", path, {"name": "Ada L."})
    assert st == 200 and upd["name"] == "Ada L."
    assert upd["email"] == u["email"]
    st, _, got = server.json("GET", path)
    assert got["name"] == "Ada L."
    st, h, data = server.request("DELETE", path)
    assert st == 204 and data == b""
    assert h["content-length"] == "0"
    st, h, body = server.json("GET", path)
    check_error(st, h, body, 404, "NOT_FOUND")
    st, h, body = server.json("DELETE", path)
    check_error(st, h, body, 404, "NOT_FOUND")


def test_get_with_fields_and_expand(server):
    u = new_user(server, name="Grace")
    p = new_post(server, u)
    st, _, doc = server.json(
        "GET", "/api/collections/posts/%s?fields=id,title" % p["id"])
    assert st == 200 and set(doc) == {"id", "title"}
    st, _, doc = server.json(
        "GET", "/api/collections/posts/%s?expand=author_id" % p["id"])
    assert st == 200
    assert doc["expand"]["author_id"]["id"] == u["id"]


def test_list_shape(server):
    st, _, body = server.json("GET", "/api/collections/users?limit=2")
    assert st == 200 and isinstance(body["docs"], list)
    assert "total" not in body
    st, _, body = server.json("GET",
                              "/api/collections/users?limit=1&total=true")
    assert body["total"] >= len(body["docs"])


def test_404s(server):
    for path in ("/api/collections/nope", "/api/collections/nope/1",
                 "/api/nothing", "/nothing", "/api/collections/users/x/y",
                 "/api/collections/bad-name"):
        st, h, body = server.json("GET", path)
        check_error(st, h, body, 404, "NOT_FOUND")
    st, h, body = server.json("GET", "/api/collections/users/" +
                              str(uuid.uuid4()))
    check_error(st, h, body, 404, "NOT_FOUND")
    st, h, body = server.json("POST", "/api/collections/nope", {"a": 1})
    check_error(st, h, body, 404, "NOT_FOUND")


def test_405(server):
    for method, path in (("PUT", "/api/collections/users"),
                         ("DELETE", "/api/collections/users"),
                         ("POST", "/api/collections/users/abc"),
                         ("POST", "/health"), ("GET", "/api/batch"),
                         ("PATCH", "/metrics")):
        st, h, body = server.json(method, path, {} if method in
                                  ("PUT", "POST", "PATCH") else None)
        check_error(st, h, body, 405, "METHOD_NOT_ALLOWED")
        assert "GET" in h["allow"] or "POST" in h["allow"]


def test_415(server):
    st, h, body = server.json("POST", "/api/collections/users",
                              '{"email":"x@example.com"}',
                              {"Content-Type": "text/plain"})
    check_error(st, h, body, 415, "UNSUPPORTED_MEDIA_TYPE")
    st, h, body = server.json("POST", "/api/collections/users",
                              b'{"email":"x@example.com"}')
    check_error(st, h, body, 415, "UNSUPPORTED_MEDIA_TYPE")
    # A JSON type with parameters is fine.
    st, h, body = server.json(
        "POST", "/api/collections/users",
        '{"email":"%s@example.com"}' % uuid.uuid4().hex[:10],
        {"Content-Type": "application/json; charset=utf-8"})
    assert st == 201, body


def test_413(server):
    big = {"email": "big@example.com", "name": "x" * 70000}
    st, h, body = server.json("POST", "/api/collections/users", big)
    check_error(st, h, body, 413, "TOO_LARGE")
    assert body["error"]["details"]["max_body"] == 65536
    # The connection-level limit did not hurt the server.
    assert server.json("GET", "/health/live")[0] == 200


def test_400_bad_body_and_query(server):
    st, h, body = server.json("POST", "/api/collections/users",
                              '{"email": ', {"Content-Type":
                                             "application/json"})
    check_error(st, h, body, 400, "INVALID_JSON")
    st, h, body = server.json("POST", "/api/collections/users", "[1,2]",
                              {"Content-Type": "application/json"})
    assert st == 400, body
    st, h, body = server.json("POST", "/api/collections/users", b"",
                              {"Content-Type": "application/json"})
    check_error(st, h, body, 400, "INVALID_JSON")
    st, h, body = server.json("PATCH", "/api/collections/users/x", b"",
                              {"Content-Type": "application/json"})
    assert st in (400, 404), body
    st, h, body = server.json("GET",
                              "/api/collections/users?filter=nope:eq:1")
    check_error(st, h, body, 400, "INVALID_QUERY")
    st, h, body = server.json("GET",
                              "/api/collections/users?filter=name:zz:1")
    check_error(st, h, body, 400, "INVALID_QUERY")
    st, h, body = server.json("GET", "/api/collections/users?limit=abc")
    check_error(st, h, body, 400, "INVALID_QUERY")
    st, h, body = server.json("GET", "/api/collections/users?bogus=1")
    check_error(st, h, body, 400, "INVALID_QUERY")


def test_409_conflicts(server):
    u = new_user(server)
    st, h, body = server.json("POST", "/api/collections/users",
                              {"email": u["email"]})
    check_error(st, h, body, 409, "CONFLICT")
    st, h, body = server.json("POST", "/api/collections/posts", {
        "title": "t", "slug": "orphan-" + uuid.uuid4().hex[:8],
        "content": "c", "author_id": str(uuid.uuid4())})
    check_error(st, h, body, 409, "CONFLICT")


def test_422_every_failing_field(server):
    st, h, body = server.json("POST", "/api/collections/users", {
        "email": "not-an-email", "name": "n" * 101, "role": "king"})
    check_error(st, h, body, 422, "VALIDATION_ERROR")
    fields = {f["field"] for f in body["error"]["details"]["fields"]}
    assert {"email", "name", "role"} <= fields, body
    # Nothing was written.
    st, _, lst = server.json(
        "GET", "/api/collections/users?filter=email:eq:not-an-email")
    assert lst["docs"] == []


def test_request_ids(server):
    st, h, _ = server.request("GET", "/health/live",
                              headers={"X-Request-Id": "abc.DEF_123-x"})
    assert h["x-request-id"] == "abc.DEF_123-x"
    for bad in ("has space", "x" * 65, "semi;colon", "ünï"):
        st, h, _ = server.request(
            "GET", "/health/live",
            headers={"X-Request-Id": bad.encode("utf-8")})
        assert h["x-request-id"] != bad
        assert re.match(r"^[A-Za-z0-9._-]{1,64}$", h["x-request-id"])
    ids = {server.request("GET", "/")[1]["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    # On errors too, and in the envelope.
    st, h, body = server.json("GET", "/nothing",
                              headers={"X-Request-Id": "trace-42"})
    assert h["x-request-id"] == "trace-42"
    assert body["request_id"] == "trace-42"


def test_cors(server):
    o = "https://app.example.com"
    st, h, _ = server.request("GET", "/api/collections/users?limit=1",
                              headers={"Origin": o})
    assert st == 200
    assert h["access-control-allow-origin"] == o
    assert "Origin" in h["vary"]
    assert "X-Request-Id" in h["access-control-expose-headers"]
    st, h, _ = server.request("GET", "/api/collections/users?limit=1",
                              headers={"Origin": "https://evil.example"})
    assert st == 200 and "access-control-allow-origin" not in h
    # Preflight.
    st, h, data = server.request("OPTIONS", "/api/collections/users/abc",
                                 headers={
                                     "Origin": o,
                                     "Access-Control-Request-Method":
                                         "PATCH",
                                     "Access-Control-Request-Headers":
                                         "content-type, x-request-id"})
    assert st == 204 and data == b""
    assert h["access-control-allow-origin"] == o
    assert "PATCH" in h["access-control-allow-methods"]
    assert "DELETE" in h["access-control-allow-methods"]
    assert "content-type" in h["access-control-allow-headers"]
    assert int(h["access-control-max-age"]) > 0
    st, h, _ = server.request("OPTIONS", "/api/collections/users",
                              headers={"Origin": "https://evil.example",
                                       "Access-Control-Request-Method":
                                           "POST"})
    assert st == 204 and "access-control-allow-origin" not in h
    st, h, _ = server.request("OPTIONS", "/nothing", headers={"Origin": o})
    assert st == 404


def count(server, coll):
    st, _, body = server.json("GET", "/api/collections/%s?limit=1&total=true"
                              % coll)
    assert st == 200, body
    return body["total"]


def test_batch_all_or_nothing(server):
    u = new_user(server)
    slug = "batch-" + uuid.uuid4().hex[:8]
    ok = {"requests": [
        {"method": "POST", "url": "/api/collections/posts",
         "body": {"title": "B1", "slug": slug, "content": "c",
                  "author_id": u["id"]}},
        {"method": "PATCH", "url": "/api/collections/users/" + u["id"],
         "body": {"name": "Batched"}},
    ]}
    st, _, body = server.json("POST", "/api/batch", ok)
    assert st == 200, body
    assert [r["status"] for r in body["results"]] == [201, 200]
    assert body["results"][0]["body"]["slug"] == slug
    assert server.json("GET", "/api/collections/users/" +
                       u["id"])[2]["name"] == "Batched"

    before = count(server, "posts")
    bad = {"requests": [
        {"method": "POST", "url": "/api/collections/posts",
         "body": {"title": "B2", "slug": slug + "-2", "content": "c",
                  "author_id": u["id"]}},
        {"method": "POST", "url": "/api/collections/posts",
         "body": {"title": "B3", "slug": slug, "content": "c",
                  "author_id": u["id"]}},        # duplicate slug
    ]}
    st, h, body = server.json("POST", "/api/batch", bad)
    check_error(st, h, body, 409, "CONFLICT")
    assert body["error"]["details"]["index"] == 1
    assert count(server, "posts") == before       # nothing written
    st, h, body = server.json("POST", "/api/batch", {"requests": [
        {"method": "POST", "url": "/api/collections/users",
         "body": {"email": "bad"}}]})
    check_error(st, h, body, 422, "VALIDATION_ERROR")
    assert body["error"]["details"]["index"] == 0
    st, h, body = server.json("POST", "/api/batch", {"nope": 1})
    assert st == 400


PROM_LINE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? '
    r'[-+0-9.eE]+(Inf)?$')


def test_metrics(server):
    server.request("GET", "/api/collections/users?limit=1")
    server.request("GET", "/nothing")
    st, h, data = server.request("GET", "/metrics")
    assert st == 200
    assert h["content-type"].startswith("text/plain")
    text = data.decode()
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("#") or not line:
            continue
        assert PROM_LINE.match(line), line
    assert types["alyx_http_requests_total"] == "counter"
    assert types["alyx_http_request_duration_seconds"] == "histogram"
    assert types["alyx_http_open_connections"] == "gauge"
    assert types["alyx_db_size_bytes"] == "gauge"
    assert types["alyx_db_wal_size_bytes"] == "gauge"
    assert re.search(r'alyx_http_requests_total\{route="/api/collections/'
                     r':name",method="GET",status="200"\} [1-9]', text)
    assert re.search(r'alyx_http_requests_total\{route="unmatched",'
                     r'method="GET",status="404"\} [1-9]', text)
    # Histogram buckets are cumulative and end with +Inf == count.
    buckets = re.findall(r'alyx_http_request_duration_seconds_bucket\{'
                         r'route="/health/ready",le="([^"]+)"\} (\d+)', text)
    assert buckets and buckets[-1][0] == "+Inf"
    vals = [int(v) for _, v in buckets]
    assert vals == sorted(vals)
    cnt = re.search(r'alyx_http_request_duration_seconds_count\{route='
                    r'"/health/ready"\} (\d+)', text)
    assert int(cnt.group(1)) == vals[-1]
    assert int(re.search(r"^alyx_db_size_bytes (\d+)$", text,
                         re.M).group(1)) > 0
    assert int(re.search(r"^alyx_http_open_connections (\d+)$", text,
                         re.M).group(1)) >= 1


def test_openapi(server):
    st, h, doc = server.json("GET", "/api/openapi.json")
    assert st == 200
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for coll in ("users", "posts", "comments"):
        name = coll.capitalize()
        assert name in schemas and name + "Create" in schemas
        assert name + "Update" in schemas and name + "List" in schemas
        assert "/api/collections/" + coll in doc["paths"]
        item = doc["paths"]["/api/collections/%s/{id}" % coll]
        assert set(item) >= {"get", "patch", "delete", "parameters"}
        lst = doc["paths"]["/api/collections/" + coll]["get"]
        assert "400" in lst["responses"]
        post = doc["paths"]["/api/collections/" + coll]["post"]
        assert {"201", "400", "409", "413", "415", "422"} <= set(
            post["responses"])
    users = schemas["Users"]["properties"]
    assert users["id"]["format"] == "uuid"
    assert users["email"]["format"] == "email"
    assert users["name"]["type"] == ["string", "null"]
    assert users["name"]["maxLength"] == 100
    assert users["role"]["enum"] == ["user", "moderator", "admin"]
    assert users["created_at"]["format"] == "date-time"
    posts = schemas["Posts"]["properties"]
    assert posts["view_count"]["type"] == "integer"
    assert posts["published"]["type"] == "boolean"
    assert posts["author_id"]["x-alyx-references"] == "users.id"
    assert "title" in schemas["PostsCreate"]["required"]
    assert "view_count" not in schemas["PostsCreate"]["required"]
    # Every $ref resolves.
    def refs(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(o, list):
            for v in o:
                yield from refs(v)
    for r in refs(doc):
        assert r.startswith("#/components/")
        node = doc
        for part in r[2:].split("/"):
            node = node[part]
    # Stable across calls (cached per schema).
    assert server.json("GET", "/api/openapi.json")[2] == doc


def test_keep_alive_many_requests_one_connection(server):
    c = server.conn()
    try:
        for i in range(50):
            st, h, _ = server.request("GET", "/health/live", conn=c)
            assert st == 200
    finally:
        c.close()


def test_every_response_has_request_id(server):
    for m, p in (("GET", "/"), ("GET", "/nothing"), ("PUT", "/"),
                 ("OPTIONS", "/api/collections/users"),
                 ("GET", "/metrics"), ("GET", "/api/openapi.json")):
        st, h, _ = server.request(m, p)
        assert h.get("x-request-id"), (m, p, st)


def test_request_log_lines(server):
    server.request("GET", "/health/live",
                   headers={"X-Request-Id": "log-check-1"})
    # Logs are flushed at the end of each loop pass.
    import time
    for _ in range(50):
        recs = [r for r in server.log_records()
                if r.get("request_id") == "log-check-1"]
        if recs:
            break
        time.sleep(0.05)
    assert recs, server.lines()[-20:]
    r = recs[0]
    assert r["msg"] == "request" and r["method"] == "GET"
    assert r["path"] == "/health/live" and r["status"] == 200
    assert r["bytes"] == len(b'{"status":"ok"}')
    assert isinstance(r["duration_ms"], float)
    assert ISO.match(r["ts"])


def test_expect_100_continue(server):
    import socket
    body = json.dumps({"email": "expect-%s@example.com"
                       % uuid.uuid4().hex[:8]}).encode()
    s = socket.create_connection((server.host, server.port), timeout=10)
    try:
        s.sendall(b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        s.sendall(body)
        resp = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        while b"\r\n\r\n" not in resp:
            resp += s.recv(4096)
        assert status_of(resp) == 201, resp
    finally:
        s.close()


def test_long_head_before_in_place_body(tmp_path):
    """Reads write their body first and the head in front of it; a head
    longer than the room kept for it (here a 900-byte CORS origin) moves
    the body up.  The body and the head come out whole either way."""
    from conftest import DEFAULT_CONFIG, Server, make_project
    origin = "https://" + "a" * 900 + ".example"
    proj = make_project(tmp_path, config=DEFAULT_CONFIG.replace(
        '"http://localhost:5173"', '"http://localhost:5173", "%s"' % origin))
    s = Server(proj)
    try:
        u = new_user(s)
        posts = [new_post(s, u, content="x" * (i * 97)) for i in range(12)]
        for hdrs in ({}, {"Origin": origin},
                     {"Origin": origin, "X-Request-Id": "r" * 64}):
            for p in posts:
                st, h, body = s.json("GET", "/api/collections/posts/%s"
                                     % p["id"], headers=hdrs)
                assert st == 200 and body == p, (st, body)
                if hdrs:
                    assert h["access-control-allow-origin"] == origin
                    assert int(h["content-length"]) == len(
                        json.dumps(body, separators=(",", ":")).encode())
            st, h, body = s.json("GET", "/api/collections/posts?filter="
                                 "author_id:eq:%s&sort=created_at&limit=100"
                                 % u["id"], headers=hdrs)
            assert st == 200 and body["docs"] == posts, body
            if "X-Request-Id" in hdrs:
                assert h["x-request-id"] == "r" * 64
        # A failed read after a long one: the error envelope, whole.
        st, h, body = s.json("GET", "/api/collections/posts/%s"
                             % uuid.uuid4(), headers={"Origin": origin})
        check_error(st, h, body, 404, "NOT_FOUND")
    finally:
        assert s.stop() == 0
