"""Hostile and broken clients: the server answers with an error or drops
that connection, keeps serving everyone else, and loses no committed
write."""
import json
import socket
import threading
import time
import uuid

import pytest

from conftest import SLOW, Server, body_of, make_project, raw, status_of


def alive(server):
    st, _, body = server.json("GET", "/health/live")
    assert st == 200 and body == {"status": "ok"}


def test_malformed_request_lines(server):
    for junk in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n",
                 b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
                 b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"\x00\x01\x02\xff\r\n\r\n",
                 b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost\r\n\r\n",
                 b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
                 b"POST /api/collections/users HTTP/1.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: -5\r\n\r\n",
                 b"POST /api/collections/users HTTP/1.1\r\n"
                 b"Content-Type: application/json\r\n"
                 b"Content-Length: 12abc\r\n\r\n{}"):
        resp = raw(server, junk, timeout=3)
        st = status_of(resp)
        assert st is None or st >= 400, (junk, resp[:200])
        alive(server)


def test_malformed_http_gets_json_errors(server):
    # alyx's own HTTP/1.1 front (lib/http/front.c) answers malformed
    # requests itself, in the error format with an X-Request-Id, and then
    # closes the connection (libwebsockets' parser answered some of these
    # with its own HTML 403 page and dropped others without a word).
    cases = (
        (b"GARBAGE\r\n\r\n", 400, "BAD_REQUEST"),
        (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "NOT_IMPLEMENTED"),
        (b"GET /api/collections/users?filter=%zz HTTP/1.1\r\n"
         b"Host: x\r\n\r\n", 400, "BAD_REQUEST"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"a" * 20000 +
         b"\r\n\r\n", 431, "HEADERS_TOO_LARGE"),
        (b"GET /health%00x HTTP/1.1\r\nHost: x\r\n\r\n", 400,
         "BAD_REQUEST"),
    )
    for junk, status, code in cases:
        resp = raw(server, junk, timeout=3)
        assert status_of(resp) == status, (junk[:40], resp[:200])
        head = resp.partition(b"\r\n\r\n")[0].lower()
        assert b"x-request-id: " in head, resp[:300]
        assert b"connection: close" in head, resp[:300]
        err = body_of(resp)["error"]
        assert err["code"] == code and err["message"], err
        alive(server)


def test_post_without_length_or_chunked(server):
    resp = raw(server, b"POST /api/collections/users HTTP/1.1\r\n"
               b"Host: x\r\nContent-Type: application/json\r\n\r\n{}",
               timeout=3)
    assert status_of(resp) == 411, resp[:300]
    resp = raw(server, b"POST /api/collections/users HTTP/1.1\r\n"
               b"Host: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
               timeout=3)
    # A chunked body is read (test_front.py has the details): {} is then
    # a validation error, not a framing one.
    assert status_of(resp) == 422, resp[:300]
    alive(server)


def test_header_size_limit(server):
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + \
        b"\r\n\r\n"
    resp = raw(server, big, timeout=3)
    st = status_of(resp)
    assert st is None or st in (400, 413, 431), resp[:200]
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    resp = raw(server, many, timeout=3)
    st = status_of(resp)
    assert st is None or st >= 400, resp[:200]
    alive(server)


def test_body_size_limit_and_declared_huge(server):
    resp = raw(server, b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\n"
               b"Content-Length: 99999999999\r\n\r\n{", timeout=3)
    assert status_of(resp) == 413
    assert body_of(resp)["error"]["code"] == "TOO_LARGE"
    alive(server)


def test_slow_header_trickle_is_dropped(server):
    """A client that sends its headers a byte at a time gets dropped
    within the request timeout plus slack, and others are served."""
    s = socket.create_connection((server.host, server.port))
    s.settimeout(1)
    start = time.time()
    closed = False
    payload = b"GET /health/live HTTP/1.1\r\nX-Slow: " + b"a" * 200
    for b in payload:
        try:
            s.send(bytes([b]))
        except OSError:
            closed = True
            break
        alive(server)   # others are served meanwhile
        time.sleep(0.2)
        if time.time() - start > 15 * SLOW:
            break
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                closed = True
                break
        except (BlockingIOError, socket.timeout):
            pass
        except OSError:
            closed = True
            break
    s.close()
    assert closed, "slow header client was never dropped"
    assert time.time() - start < 15 * SLOW


def test_slow_body_trickle_is_dropped(server):
    s = socket.create_connection((server.host, server.port))
    s.sendall(b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: 200\r\n"
              b"\r\n")
    start = time.time()
    got = b""
    s.settimeout(0.3)
    while time.time() - start < 15 * SLOW:
        try:
            s.send(b" ")
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        except OSError:
            break
    s.close()
    elapsed = time.time() - start
    assert elapsed < 15 * SLOW, "slow body client never dropped"
    # request_timeout is 2 s in the test config; lws checks each chunk.
    assert elapsed >= 1.5
    if got:
        assert status_of(got) == 408
    alive(server)


def test_client_vanishes_mid_request(server):
    for data in (b"GET /health HTTP/1.1\r\nHost:",
                 b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                 b"\r\n{\"email\":"):
        for _ in range(20):
            raw(server, data, read=False)
    # Vanish right after a complete write: the write must still land.
    email = "vanish-%s@example.com" % uuid.uuid4().hex[:8]
    body = json.dumps({"email": email}).encode()
    raw(server, b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % len(body) + body, read=False)
    deadline = time.time() + 5 * SLOW
    while time.time() < deadline:
        st, _, b = server.json("GET", "/api/collections/users?filter="
                               "email:eq:" + email)
        if b["docs"]:
            break
        time.sleep(0.05)
    assert b["docs"], "the write of a vanished client was lost"
    for _ in range(100):
        st, _, stats = server.json("GET", "/health/stats",
                                   headers=server.admin_headers())
        if stats["in_flight"] <= 1:
            break
        time.sleep(0.05)
    assert stats["in_flight"] <= 1, stats


def test_invalid_utf8_and_json(server):
    for body in (b'{"email":"\xff\xfe@example.com"}',
                 b'{"email":"a@example.com"',
                 b'{"email":"a@example.com"}}',
                 b"nul\x00l", b"{\"a\":NaN}",
                 b'{"email":"x@example.com","name":"\xc0\xaf"}'):
        st, h, resp = server.json("POST", "/api/collections/users", body,
                                  {"Content-Type": "application/json"})
        assert st == 400, (body, resp)
        assert resp["error"]["code"] == "INVALID_JSON", resp
    st, _, resp = server.json("GET", "/api/collections/users?filter=name:eq:"
                              "%FF%FE")
    assert st in (200, 400), resp
    alive(server)


def test_huge_numbers_and_deep_nesting(server):
    st, _, u = server.json("POST", "/api/collections/users",
                           {"email": "nums-%s@example.com"
                            % uuid.uuid4().hex[:8]})
    assert st == 201
    base = {"title": "n", "content": "c", "author_id": u["id"]}
    for vc in ("1e400", "123456789012345678901234567890",
               "-99999999999999999999", "1.5", "\"12\""):
        body = json.dumps(dict(base, slug="n-" + uuid.uuid4().hex[:8]))
        body = body[:-1] + ',"view_count":%s}' % vc
        st, _, resp = server.json("POST", "/api/collections/posts", body,
                                  {"Content-Type": "application/json"})
        assert st in (400, 422), (vc, resp)
    deep = "[" * 100000 + "]" * 100000
    body = json.dumps(dict(base, slug="deep"))[:-1] + ',"tags":%s}' % deep
    st, _, resp = server.json("POST", "/api/collections/posts", body,
                              {"Content-Type": "application/json"})
    assert st in (400, 413), resp
    deep = '{"a":' * 60000 + "1" + "}" * 60000
    st, _, resp = server.json("POST", "/api/batch", deep,
                              {"Content-Type": "application/json"})
    assert st in (400, 413), resp
    alive(server)


def test_path_traversal(server):
    for path in (b"/api/collections/../health/live",
                 b"/api/collections/%2e%2e/%2e%2e/etc/passwd",
                 b"/api/collections/users/..%2f..%2fetc%2fpasswd",
                 b"/api/collections/..%252f..%252fetc",
                 b"/../../../../etc/passwd",
                 b"/api/collections/users%2f..%2f..%2fmetrics",
                 b"/api/collections/users%00/x",
                 b"/api/collections/users/%zz",
                 b"/api/collections/%2e%2e"):
        resp = raw(server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                   timeout=3)
        st = status_of(resp)
        assert st is not None, (path, resp)
        body = resp.partition(b"\r\n\r\n")[2]
        assert b"root:" not in body
        if st == 200:
            # Dot segments are resolved inside the URL space only
            # (e.g. /api/collections/../health/live -> /api/health/live
            # is 404; /../../etc/passwd -> /etc/passwd is 404).
            assert json.loads(body).get("status") == "ok", (path, body)
        else:
            assert st in (400, 403, 404), (path, resp[:300])
    alive(server)


def test_concurrent_writers_lose_nothing(tmp_path):
    s = Server(make_project(tmp_path))
    try:
        st, _, u = s.json("POST", "/api/collections/users",
                          {"email": "writer@example.com"})
        assert st == 201
        n_threads, per = 16, 200
        results = [[] for _ in range(n_threads)]

        def work(t):
            c = s.conn()
            for i in range(per):
                st, _, body = s.json("POST", "/api/collections/posts", {
                    "title": "t%d-%d" % (t, i), "slug": "s-%d-%d" % (t, i),
                    "content": "c", "author_id": u["id"]}, conn=c)
                results[t].append((st, body.get("id")))
            c.close()

        threads = [threading.Thread(target=work, args=(t,))
                   for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        statuses = [st for r in results for st, _ in r]
        assert statuses.count(201) == n_threads * per, set(statuses)
        st, _, body = s.json("GET", "/api/collections/posts?limit=1"
                             "&total=true")
        assert body["total"] == n_threads * per
        st, _, stats = s.json("GET", "/health/stats",
                              headers=s.admin_headers())
        assert stats["writer"]["writes"] >= n_threads * per
        # Group commit formed batches: fewer transactions than writes.
        assert stats["writer"]["transactions"] < stats["writer"]["writes"]
    finally:
        assert s.stop() == 0
    # Nothing lost across a restart either.
    s = Server(s.proj)
    try:
        st, _, body = s.json("GET", "/api/collections/posts?limit=1"
                             "&total=true")
        assert body["total"] == 16 * 200
    finally:
        assert s.stop() == 0


def test_many_idle_connections_do_not_block_others(server):
    socks = [socket.create_connection((server.host, server.port))
             for _ in range(200)]
    try:
        for _ in range(20):
            alive(server)
    finally:
        for s in socks:
            s.close()
    alive(server)


def test_large_responses_arrive_whole(server):
    """Replies far above the 64 KiB send buffer leave in several sends."""
    st, _, u = server.json("POST", "/api/collections/users",
                           {"email": "big-%s@example.com"
                            % uuid.uuid4().hex[:8]})
    tag = uuid.uuid4().hex[:8]
    reqs = [{"method": "POST", "url": "/api/collections/posts",
             "body": {"title": "big %d" % i, "slug": "big-%s-%d" % (tag, i),
                      "content": ("%04d" % i) * 1000, "author_id": u["id"]}}
            for i in range(200)]
    for i in range(0, len(reqs), 10):   # the test config caps bodies
        st, _, body = server.json("POST", "/api/batch",
                                  {"requests": reqs[i:i + 10]})
        assert st == 200, body
    c = server.conn()
    try:
        for _ in range(3):
            st, h, data = server.request(
                "GET", "/api/collections/posts?filter=author_id:eq:%s"
                "&limit=200&sort=title" % u["id"], conn=c)
            assert st == 200
            assert int(h["content-length"]) == len(data) > 800000
            docs = json.loads(data)["docs"]
            assert len(docs) == 200
            assert all(len(d["content"]) == 4000 for d in docs)
        # The connection is still usable after the big replies.
        assert server.request("GET", "/health/live", conn=c)[0] == 200
    finally:
        c.close()


def test_many_slow_header_clients_do_not_starve_others(server):
    """Hundreds of connections holding half-sent headers (slowloris)
    while normal requests keep being answered."""
    socks = []
    try:
        for i in range(600):
            s = socket.create_connection((server.host, server.port))
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-A: ")
            socks.append(s)
        t0 = time.time()
        for _ in range(20):
            alive(server)
        assert time.time() - t0 < 5 * SLOW
    finally:
        for s in socks:
            s.close()
    alive(server)


def test_long_query_strings_near_the_header_limit(server):
    """Query values are re-encoded for the core (lws decodes them): long
    ones close to the 8 KiB header limit, plain or needing escapes, still
    answer as queries, not as faults."""
    for value in ("a" * 7000, "%2F%26%3D" * 700, "%C3%A9" * 1100):
        st, _, body = server.json(
            "GET", "/api/collections/posts?filter=title:eq:%s&limit=5"
            % value)
        assert st == 200, (st, body)
        assert body["docs"] == []
    st, _, body = server.json(
        "GET", "/api/collections/posts?filter=nosuchfield:eq:" + "a" * 7000)
    assert st == 400 and body["error"]["code"] == "INVALID_QUERY", body
    alive(server)
