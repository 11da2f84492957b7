"""Fixtures for the integration tests: a real alyxd on a free loopback port.

ALYXD_BIN names the binary under test (meson sets it); ALYX_SOURCE_ROOT the
source tree (for tests/fixtures/blog).  Only the Python standard library is
used: HTTP goes through http.client or raw sockets.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("ALYX_SOURCE_ROOT",
                           Path(__file__).resolve().parents[2]))
BIN = os.environ.get("ALYXD_BIN", str(ROOT / "build" / "daemon" / "alyxd"))
FIXTURE = ROOT / "tests" / "fixtures" / "blog"
# Under ASan/valgrind everything is slower.
SLOW = float(os.environ.get("ALYX_TEST_SLOWDOWN", "1"))

DEFAULT_CONFIG = """\
server:
  host: 127.0.0.1
  cors:
    origins: ["https://app.example.com", "http://localhost:5173"]
  max_body: 65536
  request_timeout: 2s
database:
  path: data/alyx.db
"""


# alyxd refuses to start without a JWT secret of at least 32 bytes.
TEST_SECRET = "integration-test-secret-0123456789abcdef"
TEST_AUTH = "auth:\n  jwt:\n    secret: %s\n" % TEST_SECRET


def with_secret(config):
    """`config` with TEST_AUTH appended unless it has its own `auth:`."""
    if re.search(r"^auth:", config, re.M):
        return config
    return config + ("" if config.endswith("\n") or not config else "\n") \
        + TEST_AUTH


def open_rules(schema):
    """The schema text with every collection rule replaced by "true"."""
    return re.sub(r'^(\s+)(create|read|update|delete):\s.*$',
                  r'\1\2: "true"', schema, flags=re.M)


def make_project(tmp, config=DEFAULT_CONFIG, schema=None, secret=True,
                 rules="open"):
    """A fresh copy of the blog project in tmp/proj.  With `secret`, a
    config without an `auth:` section gets TEST_AUTH.  rules="open" (the
    default: most tests exercise REST mechanics, not access) turns every
    rule of the schema into "true"; anything else (rules="blog") keeps
    the schema's own (tests/integration/test_rules.py)."""
    proj = Path(tmp) / "proj"
    shutil.copytree(FIXTURE, proj)
    (proj / "alyx.yaml").write_text(with_secret(config) if secret
                                    else config)
    if schema is not None:
        (proj / "schema.yaml").write_text(schema)
    if rules == "open":
        p = proj / "schema.yaml"
        p.write_text(open_rules(p.read_text()))
    return proj


def sanitizer_clean(text):
    for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                "runtime error:", "WARNING: ThreadSanitizer"):
        assert bad not in text, text[-6000:]


class Server:
    """A running alyxd; stopped by PID."""

    def __init__(self, proj, args=(), env=None, wait=True):
        self.proj = Path(proj)
        self.log_path = self.proj.parent / ("alyxd-%d.log" % id(self))
        self.log = open(self.log_path, "w+")
        e = dict(os.environ)
        e.pop("ALYX_HOST", None)
        e.pop("ALYX_PORT", None)
        if env:
            e.update(env)
        self.argv = [BIN, "--dir", str(self.proj), "--port", "0",
                     "--grace", "5000"] + list(args)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=self.log, env=e)
        self.port = None
        self.host = "127.0.0.1"
        if wait:
            self.wait_ready()

    def lines(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read().splitlines()

    def log_records(self):
        out = []
        for line in self.lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("alyxd exited with %d:\n%s" % (
                    self.proc.returncode, "\n".join(self.lines())))
            if self.port is None:
                for rec in self.log_records():
                    if rec.get("msg") == "listening":
                        self.port = int(rec["port"])
                for line in self.lines():
                    m = re.search(r'msg="?listening"? port="?(\d+)', line)
                    if m:
                        self.port = int(m.group(1))
            if self.port is not None:
                try:
                    st, _, _ = self.request("GET", "/health/ready")
                    if st == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("alyxd not ready:\n" + "\n".join(self.lines()))

    def conn(self, timeout=30):
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout * SLOW)

    def request(self, method, path, body=None, headers=None, conn=None):
        """One request; returns (status, headers dict, body bytes)."""
        c = conn or self.conn()
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        st, h, data = self.request(method, path, body, headers, conn)
        return st, h, (json.loads(data) if data else None)

    def sign_in(self, email, password="Correct-Horse-9", role=None):
        """Registers `email` (once), gives the account `role` (straight
        in the database) and returns the Authorization headers of a fresh
        access token."""
        st, _, body = self.json("POST", "/api/auth/register",
                                {"email": email, "password": password})
        assert st in (201, 409), body
        if role:
            import sqlite3
            db = sqlite3.connect(str(self.proj / "data" / "alyx.db"),
                                 timeout=30)
            with db:
                db.execute("UPDATE _alyx_users SET role=? WHERE email=?",
                           (role, email))
                try:
                    db.execute("UPDATE users SET role=? WHERE email=?",
                               (role, email))
                except sqlite3.OperationalError:
                    pass    # no users collection
            db.close()
        st, _, body = self.json("POST", "/api/auth/login",
                                {"email": email, "password": password})
        assert st == 200, body
        return {"Authorization": "Bearer " + body["access_token"]}

    def admin_headers(self):
        """An admin's Authorization headers (made once per server)."""
        if getattr(self, "_admin", None) is None:
            self._admin = self.sign_in("admin@example.com", role="admin")
        return self._admin

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("alyxd did not stop:\n" +
                                     "\n".join(self.lines()))
        text = "\n".join(self.lines())
        self.log.close()
        sanitizer_clean(text)
        return self.proc.returncode


def tls_cert(tmp):
    """A self-signed certificate and key for 127.0.0.1 in tmp: (cert,
    key), or pytest.skip without the openssl CLI."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl CLI")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def tls_server(proj, cert):
    """A Server for a project configured with server.tls (started, not
    yet waited for) whose conn() speaks TLS, and the client's SSLContext.
    OpenSSL keeps a fixed amount of global state at exit with several TLS
    contexts; exactly that is suppressed (it does not grow per
    request)."""
    import ssl
    supp = str(Path(__file__).with_name("lsan-openssl.supp"))
    lsan = os.environ.get("LSAN_OPTIONS", "")
    s = Server(proj, wait=False, env={"LSAN_OPTIONS": (
        lsan + ":" if lsan else "") + "suppressions=" + supp})
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    s.conn = lambda timeout=30: http.client.HTTPSConnection(
        s.host, s.port, context=ctx, timeout=timeout)
    return s, ctx


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("srv"))
    s = Server(proj)
    yield s
    assert s.stop() == 0


def raw(server, data, read=True, timeout=5):
    """Sends raw bytes; returns what the server answers until it closes
    or the timeout (b"" if it closed without answering)."""
    s = socket.create_connection((server.host, server.port),
                                 timeout=timeout * SLOW)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()


def status_of(resp):
    """The status code of a raw HTTP response, or None."""
    if not resp.startswith(b"HTTP/1."):
        return None
    return int(resp.split(b" ")[1])


def body_of(resp):
    return json.loads(resp.partition(b"\r\n\r\n")[2])
