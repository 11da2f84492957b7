"""alyxd as a process: flags, environment, start-up errors with clear
messages and non-zero exits, graceful shutdown without lost writes."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (BIN, SLOW, Server, make_project, sanitizer_clean,
                      with_secret)

# docs/alyxd.md
EXIT_USAGE, EXIT_DATA, EXIT_CONFIG, EXIT_MIGRATION, EXIT_LISTEN = 2, 3, 4, 5, 6


def run(args, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("ALYX_HOST", None)
    e.pop("ALYX_PORT", None)
    if env:
        e.update(env)
    p = subprocess.run([BIN] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout * SLOW, env=e)
    sanitizer_clean(p.stderr)
    return p


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_version_and_help():
    p = run(["--version"])
    assert p.returncode == 0 and "alyxd 0." in p.stdout
    assert "linked with libalyx" in p.stdout
    p = run(["--help"])
    assert p.returncode == 0 and "--port" in p.stdout
    for flag in ("--dir", "--host", "--config", "--threads", "--grace",
                 "--log-format", "--loop"):
        assert flag in p.stdout
    assert run(["--bogus"]).returncode == EXIT_USAGE
    assert run(["--port", "70000"]).returncode == EXIT_USAGE
    assert run(["extra-arg"]).returncode == EXIT_USAGE
    p = run(["--dir", "/nonexistent"], env={"ALYX_PORT": "notaport"})
    assert p.returncode == EXIT_USAGE and "ALYX_PORT" in p.stderr


def test_port_in_use(tmp_path):
    s = Server(make_project(tmp_path / "a"))
    try:
        proj2 = make_project(tmp_path / "b")
        p = run(["--dir", proj2, "--port", s.port])
        assert p.returncode == EXIT_LISTEN, p.stderr
        assert "already in use" in p.stderr
        # The first server is unaffected.
        assert s.json("GET", "/health/live")[0] == 200
    finally:
        assert s.stop() == 0


def test_env_overrides_config(tmp_path):
    port = free_port()
    proj = make_project(tmp_path)
    s = Server(proj, env={"ALYX_PORT": str(port), "ALYX_HOST": "127.0.0.1"},
               wait=False)
    # The fixture passes --port 0, which wins over the environment; run
    # the binary directly instead.
    s.stop()
    e = dict(os.environ, ALYX_PORT=str(port), ALYX_HOST="127.0.0.1")
    proc = subprocess.Popen([BIN, "--dir", str(proj)], env=e,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20 * SLOW
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("no server on ALYX_PORT")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30 * SLOW)
    assert proc.returncode == 0, err
    assert '"port":"%d"' % port in err


def test_bad_config(tmp_path):
    proj = make_project(tmp_path, config="server:\n  port: [\n")
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "alyx.yaml" in p.stderr
    proj = make_project(tmp_path / "b", config="server:\n  port: eighty\n")
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "port" in p.stderr


def test_bad_schema(tmp_path):
    proj = make_project(tmp_path, schema="version: 1\ncollections:\n"
                        "  things:\n    fields:\n      id:\n"
                        "        type: strng\n        primary: true\n")
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "strng" in p.stderr


def test_missing_and_unwritable_dirs(tmp_path):
    p = run(["--dir", tmp_path / "nope", "--port", "0"])
    assert p.returncode == EXIT_DATA, p.stderr
    assert "does not exist" in p.stderr
    # A data path nobody (not even root) can create.
    proj = make_project(tmp_path, config="database:\n"
                        "  path: /proc/alyx-test/alyx.db\n")
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_DATA, p.stderr
    assert "error" in p.stderr


def test_config_flag(tmp_path):
    proj = make_project(tmp_path)
    other = tmp_path / "production.yaml"
    # A config outside the project: its database path still resolves
    # against the project directory.
    other.write_text(with_secret("database:\n  path: data/other.db\n"))
    s = Server(proj, args=["--config", str(other)])
    try:
        assert (proj / "data" / "other.db").exists()
    finally:
        assert s.stop() == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  prot: 1\n")
    p = run(["--dir", proj, "--config", bad, "--port", "0"])
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "prot" in p.stderr
    p = run(["--config", tmp_path / "missing.yaml"])
    assert p.returncode == EXIT_CONFIG


def test_destructive_schema_change_refuses_to_start(tmp_path):
    proj = make_project(tmp_path)
    s = Server(proj)
    assert s.stop() == 0
    schema = (proj / "schema.yaml").read_text()
    # Drop the users.avatar_url field.
    lines = schema.splitlines()
    i = next(n for n, l in enumerate(lines) if l.strip() == "avatar_url:")
    del lines[i:i + 3]
    (proj / "schema.yaml").write_text("\n".join(lines) + "\n")
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_MIGRATION, p.stderr
    assert "avatar_url" in p.stderr
    assert "migration" in p.stderr


def test_safe_schema_change_applies_on_start(tmp_path):
    proj = make_project(tmp_path)
    schema = (proj / "schema.yaml").read_text()
    schema = schema.replace("      avatar_url:\n",
                            "      bio:\n        type: text\n"
                            "        nullable: true\n      avatar_url:\n", 1)
    (proj / "schema.yaml").write_text(schema)
    s = Server(proj)
    try:
        st, _, u = s.json("POST", "/api/collections/users",
                          {"email": "bio@example.com", "bio": "hi"})
        assert st == 201 and u["bio"] == "hi"
        st, _, doc = s.json("GET", "/api/openapi.json")
        assert "bio" in doc["components"]["schemas"]["Users"]["properties"]
    finally:
        assert s.stop() == 0


def test_logfmt_and_quiet(tmp_path):
    s = Server(make_project(tmp_path), args=["--log-format", "logfmt"])
    try:
        s.request("GET", "/health/live", headers={"X-Request-Id": "lf-1"})
        time.sleep(0.3)
    finally:
        assert s.stop() == 0
    line = [l for l in s.lines() if "request_id=lf-1" in l]
    assert line, s.lines()
    assert "method=GET" in line[0] and "status=200" in line[0]
    assert "path=/health/live" in line[0] and "duration_ms=" in line[0]
    s = Server(make_project(tmp_path / "q"), args=["--quiet"])
    try:
        s.request("GET", "/health/live", headers={"X-Request-Id": "q-1"})
    finally:
        assert s.stop() == 0
    assert not [l for l in s.lines() if "q-1" in l]


def test_sigterm_during_writes_exits_0_and_loses_nothing(tmp_path):
    proj = make_project(tmp_path)
    s = Server(proj)
    st, _, u = s.json("POST", "/api/collections/users",
                      {"email": "stop@example.com"})
    assert st == 201
    acked, errors = [], []
    stop = threading.Event()

    def work(t):
        c = s.conn(timeout=10)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                st, _, body = s.json("POST", "/api/collections/posts", {
                    "title": "t", "slug": "s-%d-%d" % (t, i),
                    "content": "c", "author_id": u["id"]}, conn=c)
            except (OSError, ValueError, Exception) as e:
                errors.append(type(e).__name__)
                c.close()
                try:
                    c = s.conn(timeout=10)
                except OSError:
                    return
                if s.proc.poll() is not None:
                    return
                continue
            if st == 201:
                acked.append(body["id"])
            else:
                assert st == 503, body
                errors.append(503)
        c.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    time.sleep(1.0)
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(30 * SLOW)
    stop.set()
    for th in threads:
        th.join()
    assert s.proc.returncode == 0, "\n".join(s.lines()[-30:])
    assert len(acked) > 50
    msgs = [r.get("msg") for r in s.log_records()]
    assert "shutting down" in msgs and "stopped" in msgs
    # The WAL was checkpointed into the database on the way out.
    wal = proj / "data" / "alyx.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    sanitizer_clean("\n".join(s.lines()))
    # Every acknowledged write is there after a restart.
    s2 = Server(proj)
    try:
        st, _, body = s2.json("GET", "/api/collections/posts?limit=1"
                              "&total=true")
        assert body["total"] >= len(acked)
        for pid in acked[::max(1, len(acked) // 50)] + acked[-5:]:
            assert s2.json("GET", "/api/collections/posts/" + pid)[0] == 200
    finally:
        assert s2.stop() == 0


def test_ready_is_503_while_stopping(tmp_path):
    """During the grace period new requests get 503 (or the listener is
    already closed); an in-flight slow request still completes."""
    proj = make_project(tmp_path, config="""\
server:
  request_timeout: 10s
database:
  path: data/alyx.db
""")
    s = Server(proj)
    try:
        # Hold a request in flight: a body that arrives slowly.
        slow = socket.create_connection((s.host, s.port))
        body = json.dumps({"email": "late@example.com"}).encode()
        slow.sendall(b"POST /api/collections/users HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        keep = s.conn()
        assert s.request("GET", "/health/ready", conn=keep)[0] == 200
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        st, h, data = s.request("GET", "/health/ready", conn=keep)
        assert st == 503, data
        assert json.loads(data)["error"]["code"] == "UNAVAILABLE"
        assert h.get("connection") == "close"
        slow.sendall(body[5:])
        resp = b""
        slow.settimeout(10 * SLOW)
        while b"\r\n\r\n" not in resp:
            chunk = slow.recv(4096)
            if not chunk:
                break
            resp += chunk
        assert resp.startswith(b"HTTP/1.1 201"), resp
        slow.close()
        s.proc.wait(30 * SLOW)
        assert s.proc.returncode == 0
    finally:
        s.stop()


def test_refuses_to_start_without_a_jwt_secret(tmp_path):
    """No secret, an empty ${JWT_SECRET} or a short one: exit 4 with a
    message naming the key; auth.enabled: false needs none."""
    proj = make_project(tmp_path / "none", secret=False)
    p = run(["--dir", proj, "--port", "0"])
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "auth.jwt.secret" in p.stderr and "listening" not in p.stderr
    proj = make_project(tmp_path / "env", config="auth:\n  jwt:\n"
                        "    secret: ${JWT_SECRET}\n")
    p = run(["--dir", proj, "--port", "0"], env={"JWT_SECRET": ""})
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "auth.jwt.secret" in p.stderr
    p = run(["--dir", proj, "--port", "0"], env={"JWT_SECRET": "x" * 31})
    assert p.returncode == EXIT_CONFIG, p.stderr
    assert "at least 32" in p.stderr
    s = Server(proj, env={"JWT_SECRET": "x" * 32})
    assert s.stop() == 0
    proj = make_project(tmp_path / "off", config="auth:\n  enabled: false\n")
    s = Server(proj)
    try:
        st, _, body = s.json("POST", "/api/auth/login",
                             {"email": "a@b.co", "password": "whatever1"})
        assert st == 404 and "turned off" in body["error"]["message"]
        st, _, _ = s.json("GET", "/api/auth/me",
                          headers={"Authorization": "Bearer x.y.z"})
        assert st == 401
        st, _, doc = s.json("GET", "/api/openapi.json")
        assert st == 200
        assert not any(p.startswith("/api/auth") for p in doc["paths"])
    finally:
        assert s.stop() == 0
