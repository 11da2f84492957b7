"""HTTP/1.1 pipelining: several requests sent before the first answer, on
one keep-alive connection, including requests with a body (POST/PATCH),
whether they arrive in one send() or in odd-sized pieces.  The server runs
a single service thread, so a stalled thread would also stall the other
clients checked here.  Every test runs twice: on plain HTTP (alyx's own
front, lib/http/front.c) and on TLS (libwebsockets' TLS, relayed in
plaintext to the same front by lib/http/tls.c)."""
import json
import socket
import time
import uuid

import pytest

from conftest import SLOW, Server, make_project, tls_cert, tls_server

CONFIG = """\
server:
  host: 127.0.0.1
  threads: 1
  max_body: 65536
  request_timeout: 2s
%s
database:
  path: data/alyx.db
"""


@pytest.fixture(scope="module", params=["plain", "tls"])
def one(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    if request.param == "plain":
        s = Server(make_project(tmp, CONFIG % ""))
        s.wrap = lambda sock: sock
        yield s
        assert s.stop() == 0
        return
    cert, key = tls_cert(tmp)
    proj = make_project(tmp, CONFIG % (
        "  tls:\n    cert: %s\n    key: %s" % (cert, key)))
    s, ctx = tls_server(proj, cert)
    s.wrap = lambda sock: ctx.wrap_socket(sock)
    try:
        s.wait_ready()
        yield s
    finally:
        assert s.stop() == 0


def connect(server):
    sock = socket.create_connection((server.host, server.port),
                                    timeout=10 * SLOW)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return server.wrap(sock)


def req(method, path, body=None):
    head = "%s %s HTTP/1.1\r\nHost: test\r\n" % (method, path)
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        head += "Content-Type: application/json\r\n"
        head += "Content-Length: %d\r\n" % len(data)
    return (head + "\r\n").encode() + data


def read_responses(sock, n):
    """Reads n HTTP responses; returns [(status, body bytes)]."""
    out, buf = [], b""
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "connection closed after %d answers" % len(out)
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside an answer"
            buf += chunk
        out.append((int(lines[0].split(b" ")[1]), buf[:length]))
        buf = buf[length:]
    assert buf == b"", buf
    return out


def pipeline(server, data, n, chunks=None):
    """Sends data (whole, or cut into the given chunk sizes, repeated) on
    one connection and returns its n answers."""
    s = connect(server)
    try:
        if not chunks:
            s.sendall(data)
        else:
            i = k = 0
            while i < len(data):
                step = chunks[k % len(chunks)]
                s.sendall(data[i:i + step])
                i += step
                k += 1
                time.sleep(0.002)
        answers = read_responses(s, n)
        # The connection is still usable afterwards.
        s.sendall(req("GET", "/health/live"))
        assert read_responses(s, 1)[0][0] == 200
        return answers
    finally:
        s.close()


def new_user_body(tag):
    return {"email": "%s-%s@example.com" % (tag, uuid.uuid4().hex[:10]),
            "name": tag}


def others_served(server):
    """Another client on the same (only) service thread gets answers."""
    for _ in range(3):
        st, _, body = server.json("GET", "/health/live")
        assert st == 200 and body == {"status": "ok"}


@pytest.mark.parametrize("count", [2, 3])
def test_posts_in_one_send(one, count):
    docs = [new_user_body("p%d" % i) for i in range(count)]
    data = b"".join(req("POST", "/api/collections/users", d) for d in docs)
    answers = pipeline(one, data, count)
    for d, (st, body) in zip(docs, answers):
        assert st == 201, body
        assert json.loads(body)["email"] == d["email"]
    others_served(one)


@pytest.mark.parametrize("chunks", [[1], [7, 3], [13, 61, 5], [150, 2]])
def test_posts_in_odd_chunks(one, chunks):
    docs = [new_user_body("c%d" % i) for i in range(3)]
    data = b"".join(req("POST", "/api/collections/users", d) for d in docs)
    answers = pipeline(one, data, 3, chunks)
    assert [st for st, _ in answers] == [201, 201, 201], answers
    assert [json.loads(b)["email"] for _, b in answers] == \
        [d["email"] for d in docs]
    others_served(one)


def test_patches_pipelined(one):
    st, _, u = one.json("POST", "/api/collections/users",
                        new_user_body("patch"))
    assert st == 201, u
    path = "/api/collections/users/" + u["id"]
    data = (req("PATCH", path, {"name": "first"}) +
            req("PATCH", path, {"name": "second"}) +
            req("GET", path) +
            req("PATCH", path, {"name": "third"}))
    for chunks in (None, [11, 4]):
        answers = pipeline(one, data, 4, chunks)
        assert [st for st, _ in answers] == [200, 200, 200, 200], answers
        assert [json.loads(b)["name"] for _, b in answers] == \
            ["first", "second", "second", "third"]
    others_served(one)


def test_mixed_get_post_delete(one):
    st, _, u = one.json("POST", "/api/collections/users",
                        new_user_body("gone"))
    assert st == 201, u
    path = "/api/collections/users/" + u["id"]
    fresh = new_user_body("mixed")
    data = (req("GET", path) +
            req("POST", "/api/collections/users", fresh) +
            req("DELETE", path) +
            req("GET", path) +
            req("POST", "/api/collections/users", {"email": "not-an-email"}) +
            req("GET", "/health/live"))
    answers = pipeline(one, data, 6)
    assert [st for st, _ in answers] == [200, 201, 204, 404, 422, 200], \
        answers
    assert json.loads(answers[0][1])["id"] == u["id"]
    assert json.loads(answers[1][1])["email"] == fresh["email"]
    assert json.loads(answers[5][1]) == {"status": "ok"}
    others_served(one)


def test_stalled_pipeline_does_not_block_others(one):
    """A client that pipelines a body request and then stops reading
    leaves the thread free for everyone else."""
    s = connect(one)
    try:
        data = b"".join(req("POST", "/api/collections/users",
                            new_user_body("idle%d" % i)) for i in range(3))
        s.sendall(data + data[:40])	# and half a request line more
        others_served(one)
    finally:
        s.close()
    others_served(one)


def test_chunked_body(one):
    """A chunked POST between two GETs: alyx's front reads it (201) and
    the connection serves on, over TLS too (tls.c relays the plaintext
    to the same front)."""
    u = new_user_body("chunked")
    body = json.dumps(u).encode()
    data = (req("GET", "/health/live") +
            b"POST /api/collections/users HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" +
            b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
    s = connect(one)
    try:
        s.sendall(data)
        answers = read_responses(s, 2)
        assert answers[0][0] == 200
        assert answers[1][0] == 201, answers[1]
        assert json.loads(answers[1][1])["email"] == u["email"]
        s.sendall(req("GET", "/health/live"))
        assert read_responses(s, 1)[0][0] == 200
    finally:
        s.close()


def test_head_then_get(one):
    """HEAD is answered like GET without the body, on either front: the
    GET's status line follows the HEAD's header section directly."""
    s = connect(one)
    try:
        s.sendall(b"HEAD /health/live HTTP/1.1\r\nHost: test\r\n\r\n" +
                  req("GET", "/health/live"))
        buf = b""
        while buf.count(b"\r\n\r\n") < 2:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"content-length: 15" in head.lower(), head  # {"status":"ok"}
        assert rest.startswith(b"HTTP/1.1 200 "), rest[:100]
    finally:
        s.close()


def test_malformed_head_gets_the_json_error(one):
    """A malformed head gets the JSON error with X-Request-Id on either
    front (over TLS it was libwebsockets' HTML 403 before tls.c), the
    request behind it is not served, and the connection closes."""
    s = connect(one)
    try:
        s.sendall(b"GET /%zz HTTP/1.1\r\nHost: test\r\n\r\n" +
                  req("GET", "/health/live"))
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert b"x-request-id: " in head.lower(), head
        assert b"connection: close" in head.lower(), head
        err = json.loads(body)["error"]
        assert err["code"] == "BAD_REQUEST" and \
            err["details"] == {"part": "path"}, err
    finally:
        s.close()


def test_options_asterisk(one):
    s = connect(one)
    try:
        s.sendall(b"OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 204 "), buf
        assert b"Allow: " in buf, buf
    finally:
        s.close()
