"""alyx dev / alyx serve: the server runs in the foreground on a free
loopback port, answers HTTP, and stops cleanly on SIGINT / SIGTERM."""
import http.client
import json
import os
import re
import select
import signal
import subprocess
import time

from conftest import (BADPROJECT, BIN, FAIL, MIGRATION, NOPROJECT, OK, USAGE,
                      fails, ok, run)

START_TIMEOUT = 60


# `alyx serve` (like alyxd) needs the template's ${JWT_SECRET}; `alyx dev`
# makes its own when there is none.
SECRET = "cli-test-secret-0123456789abcdefghijkl"


def start(project, cmd="dev", *extra, env=None):
    e = dict(os.environ)
    e.pop("JWT_SECRET", None)
    if cmd == "serve":
        e["JWT_SECRET"] = SECRET
    e.update(env or {})
    proc = subprocess.Popen(
        [BIN, cmd, "--port", "0", "--host", "127.0.0.1", *extra],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=e)
    # Read the raw pipe: select() on a buffered reader would miss lines
    # that arrived together with the one readline() returned.
    fd = proc.stdout.fileno()
    lines = []
    pending = b""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            line = raw.decode("utf-8", "replace") + "\n"
            lines.append(line)
            m = re.search(r"Server running at http://127\.0\.0\.1:(\d+)",
                          line)
            if m:
                return proc, int(m.group(1)), lines
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError("server did not start:\n%s%s\n%s" %
                         ("".join(lines), out, err))


def get(port, path):
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        con.request("GET", path)
        r = con.getresponse()
        return r.status, r.read()
    finally:
        con.close()


def stop(proc, sig=signal.SIGINT):
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    assert "ERROR: AddressSanitizer" not in err, err
    assert "ERROR: LeakSanitizer" not in err, err
    assert proc.returncode == OK, (proc.returncode, out, err)
    return out, err


def test_dev_applies_the_schema_and_serves(blog):
    proc, port, lines = start(blog)
    try:
        text = "".join(lines)
        assert "Starting Alyx dev server" in text
        assert "Schema loaded (3 collections)" in text
        status, body = get(port, "/api/collections/posts")
        assert status == 200
        assert json.loads(body) == {"docs": []}
        status, _ = get(port, "/health")
        assert status == 200
    finally:
        out, err = stop(proc)
    assert "Stopped." in out
    # The request log went to stderr.
    assert "/api/collections/posts" in err
    # The schema stays applied.
    assert ok("migrate", "status", "--json", cwd=blog).json()[
        "schema"]["changes"] == []


def test_serve_the_seeded_example(blog_db):
    proc, port, _ = start(blog_db, "serve", "--quiet")
    try:
        status, body = get(port, "/api/collections/posts?filter="
                                 "published:eq:true&sort=-view_count")
        assert status == 200
        docs = json.loads(body)["docs"]
        assert [d["slug"] for d in docs] == \
            ["just-a-hobby", "analytical-engine", "first-bug"]
    finally:
        _, err = stop(proc, signal.SIGTERM)
    assert "/api/collections" not in err


def test_dev_refuses_a_destructive_schema(blog_db):
    p = blog_db / "schema.yaml"
    p.write_text(p.read_text().replace(
        "      avatar_url:\n        type: string\n        nullable: true\n",
        ""))
    res = fails(MIGRATION, "MIGRATION_REQUIRED", "dev", "--port", "0",
                cwd=blog_db)
    assert "avatar_url" in res.err
    assert "Server running" not in res.out


def test_dev_outside_a_project(tmp_path):
    fails(NOPROJECT, "NOT_A_PROJECT", "dev", "--port", "0", cwd=tmp_path)


def test_port_in_use_is_reported(blog):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        res = run("dev", "--port", str(port), cwd=blog, timeout=60)
    finally:
        s.close()
    assert res.code == 1, res
    assert res.err.startswith("alyx: IO_ERROR:"), res
    assert str(port) in res.err
    assert "Server running" not in res.out


def test_bad_port_is_a_usage_error(blog):
    for bad in ("-1", "65536", "http"):
        fails(USAGE, "USAGE_ERROR", "dev", "--port", bad, cwd=blog)
    fails(USAGE, "USAGE_ERROR", "serve", "--threads", "0", cwd=blog)
    fails(USAGE, "USAGE_ERROR", "serve", "extra", cwd=blog)


def post(port, path, body):
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        con.request("POST", path, body=json.dumps(body),
                    headers={"Content-Type": "application/json"})
        r = con.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        con.close()


def test_dev_makes_and_keeps_a_jwt_secret(blog):
    """Without auth.jwt.secret, alyx dev generates one into the data
    directory (mode 0600), reuses it on the next run, and auth works."""
    secret_file = blog / "data" / "jwt-secret"
    proc, port, lines = start(blog)
    try:
        assert "JWT secret: " in "".join(lines)
        assert "generated" in "".join(lines)
        st, body = post(port, "/api/auth/register",
                        {"email": "dev@example.com", "password": "password1",
                         "name": "Dev"})
        assert st == 201, body
        token = body["access_token"]
    finally:
        stop(proc)
    secret = secret_file.read_text()
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert secret_file.stat().st_mode & 0o777 == 0o600
    proc, port, lines = start(blog)
    try:
        assert "kept from an earlier run" in "".join(lines)
        # The same key: the first run's token is still good.
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        con.request("GET", "/api/auth/me",
                    headers={"Authorization": "Bearer " + token})
        r = con.getresponse()
        assert r.status == 200 and json.loads(r.read())["email"] == \
            "dev@example.com"
        con.close()
    finally:
        stop(proc)
    assert secret_file.read_text() == secret
    # A secret from the environment wins and no file is consulted.
    secret_file.chmod(0o644)
    proc, port, lines = start(blog, env={"JWT_SECRET": SECRET})
    try:
        assert "JWT secret:" not in "".join(lines)
    finally:
        stop(proc)
    # Without it, a file others may read is refused.
    res = fails(FAIL, "IO_ERROR", "dev", "--port", "0", cwd=blog,
                env={"JWT_SECRET": ""})
    assert "chmod 600" in res.err


def test_serve_refuses_without_a_jwt_secret(blog_db):
    res = fails(BADPROJECT, None, "serve", "--port", "0", cwd=blog_db,
                env={"JWT_SECRET": ""})
    assert "auth.jwt.secret" in res.err
    assert not (blog_db / "data" / "jwt-secret").exists()


def test_dev_logs_auth_links(blog):
    """In dev mode, with no webhook, a password reset link goes to the
    log; the answer is the same as for an unknown email."""
    proc, port, _ = start(blog)
    try:
        st, body = post(port, "/api/auth/register",
                        {"email": "linky@example.com",
                         "password": "password1"})
        assert st == 201, body
        st, a = post(port, "/api/auth/request-password-reset",
                     {"email": "linky@example.com"})
        st2, b = post(port, "/api/auth/request-password-reset",
                      {"email": "ghost@example.com"})
        assert st == st2 == 202 and a == b
    finally:
        _, err = stop(proc)
    lines = [l for l in err.splitlines() if "auth link" in l]
    assert len(lines) == 1, err
    assert "type=password_reset" in lines[0]
    assert "email=linky@example.com" in lines[0]
    assert 'link="/reset-password?token=' in lines[0]
