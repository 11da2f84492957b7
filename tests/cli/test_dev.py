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

from conftest import BIN, MIGRATION, NOPROJECT, OK, USAGE, fails, ok, run

START_TIMEOUT = 60


def start(project, cmd="dev", *extra):
    proc = subprocess.Popen(
        [BIN, cmd, "--port", "0", "--host", "127.0.0.1", *extra],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ))
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
