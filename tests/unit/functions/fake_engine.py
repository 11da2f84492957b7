#!/usr/bin/env python3
"""fake_engine.py - a small Docker Engine API on a unix socket, for the
container runner's tests (tests/unit/functions/test-container.c).

    fake_engine.py SOCKET [IMAGE...]

Serves the endpoints libalyx uses, with the shapes Docker and Podman
answer (../shared/notes/containers.md): _ping, version, image inspect,
container create/start/inspect/list/logs/kill/delete.  A "container" is
the Entrypoint + Cmd run as a child process (own session), with the
create's Env; bind mounts are emulated by translating paths under a
bind's target (in Env and arguments) to its source.  Like podman, a start
without HostConfig.Ulimits fails (500 "error setting rlimit type 7").
An image whose name starts with "broken" runs a command that prints to
stderr and exits 3.

Test controls (not Engine API):
    POST /_fake/fault {"op":"create|start|ping|delete","status":500,
                       "message":"...","times":1}
    POST /_fake/add   {"Id":"...","Labels":{...}}   an exited container
    GET  /_fake/calls [[method, path, body-or-null], ...]
Prints "ready" on stdout once listening; SIGTERM kills every child.
"""
import json
import os
import re
import secrets
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler

LOCK = threading.Lock()
CONTAINERS = {}         # id -> dict
CALLS = []
FAULTS = {}             # op -> {"status","message","times"}
IMAGES = set()
LOG_DIR = tempfile.mkdtemp(prefix="alyx-fake-engine-")


def fault(op):
    with LOCK:
        f = FAULTS.get(op)
        if not f or f["times"] <= 0:
            return None
        f["times"] -= 1
        return f


def translate(value, binds):
    for src, dst in binds:
        if value == dst or value.startswith(dst + "/"):
            return src + value[len(dst):]
        if "=" in value:
            k, v = value.split("=", 1)
            if v == dst or v.startswith(dst + "/"):
                return k + "=" + src + v[len(dst):]
    return value


def watch(c):
    code = c["proc"].wait()
    with LOCK:
        c["running"] = False
        c["exit"] = 128 - code if code < 0 else code


def start(c):
    cfg = c["config"]
    host = cfg.get("HostConfig") or {}
    binds = []
    for b in host.get("Binds") or []:
        parts = b.split(":")
        binds.append((parts[0], parts[1]))
    ep = cfg.get("Entrypoint") or []
    if isinstance(ep, str):
        ep = [ep]
    argv = [translate(a, binds) for a in ep + (cfg.get("Cmd") or [])]
    if cfg["Image"].startswith("broken"):
        argv = ["/bin/sh", "-c", "echo executor failed to load >&2; exit 3"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in cfg.get("Env") or []:
        k, v = translate(e, binds).split("=", 1)
        env[k] = v
    log = open(os.path.join(LOG_DIR, c["id"]), "wb")
    cwd = translate(cfg.get("WorkingDir") or "/", binds)
    c["proc"] = subprocess.Popen(argv, env=env, cwd=cwd,
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True)
    log.close()
    c["running"] = True
    threading.Thread(target=watch, args=(c,), daemon=True).start()


def kill(c):
    p = c.get("proc")
    if p and c["running"]:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        c["running"] = False
        c["exit"] = 137


def label_match(c, filters):
    labels = c["config"].get("Labels") or {}
    for want in filters.get("label", []):
        k, _, v = want.partition("=")
        if k not in labels or (v and labels[k] != v):
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=None, ctype="application/json"):
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else \
                json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def err(self, status, message):
        self.reply(status, {"cause": message, "message": message,
                            "response": status})

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        url = urllib.parse.urlsplit(self.path)
        path = re.sub(r"^/v[0-9.]+", "", url.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        body = json.loads(raw) if raw else None
        if not path.startswith("/_fake/"):
            with LOCK:
                CALLS.append([method, path + ("?" + url.query if url.query
                                              else ""), body])
        self.route(method, path, q, body)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def route(self, method, path, q, body):
        m = re.match(r"^/containers/([^/]+)(/[a-z]+)?$", path)
        if path == "/_fake/fault" and method == "POST":
            with LOCK:
                FAULTS[body["op"]] = {"status": body.get("status", 500),
                                      "message": body.get("message", "x"),
                                      "times": body.get("times", 1)}
            return self.reply(204)
        if path == "/_fake/add" and method == "POST":
            with LOCK:
                CONTAINERS[body["Id"]] = {
                    "id": body["Id"], "name": body["Id"][:12],
                    "config": {"Image": "x", "Labels": body["Labels"]},
                    "running": False, "exit": 0}
            return self.reply(204)
        if path == "/_fake/calls":
            with LOCK:
                return self.reply(200, CALLS)
        if path == "/_ping":
            f = fault("ping")
            if f:
                return self.err(f["status"], f["message"])
            return self.reply(200, b"OK", "text/plain")
        if path == "/version":
            return self.reply(200, {"Version": "fake", "ApiVersion": "1.41"})
        mi = re.match(r"^/images/(.+)/json$", path)
        if mi and method == "GET":
            if mi.group(1) not in IMAGES:
                return self.err(404, "No such image: " + mi.group(1))
            return self.reply(200, {"Id": "sha256:" + "0" * 64,
                                    "RepoTags": [mi.group(1)]})
        if path == "/containers/create" and method == "POST":
            f = fault("create")
            if f:
                return self.err(f["status"], f["message"])
            if body.get("Image") not in IMAGES:
                return self.err(404, "No such image: %s" % body.get("Image"))
            name = q.get("name") or secrets.token_hex(6)
            with LOCK:
                if any(c["name"] == name for c in CONTAINERS.values()):
                    return self.err(500, "that name is already in use")
                cid = secrets.token_hex(32)
                CONTAINERS[cid] = {"id": cid, "name": name, "config": body,
                                   "running": False, "exit": 0}
            return self.reply(201, {"Id": cid, "Warnings": []})
        if path == "/containers/json" and method == "GET":
            filters = json.loads(q.get("filters") or "{}")
            with LOCK:
                out = [{"Id": c["id"], "Names": ["/" + c["name"]],
                        "Image": c["config"].get("Image"),
                        "Labels": c["config"].get("Labels") or {},
                        "State": "running" if c["running"] else "exited"}
                       for c in CONTAINERS.values()
                       if label_match(c, filters)]
            return self.reply(200, out)
        if not m:
            return self.err(404, "page not found")
        with LOCK:
            c = CONTAINERS.get(m.group(1))
        op = m.group(2)
        if not c:
            return self.err(404, "no container with name or ID %s found"
                            % m.group(1))
        if method == "POST" and op == "/start":
            f = fault("start")
            if f:
                return self.err(f["status"], f["message"])
            if c["running"]:
                return self.reply(304)
            if not (c["config"].get("HostConfig") or {}).get("Ulimits"):
                return self.err(500, "runc: error setting rlimit type 7: "
                                "operation not permitted")
            start(c)
            return self.reply(204)
        if method == "GET" and op == "/json":
            with LOCK:
                st = {"Status": "running" if c["running"] else "exited",
                      "Running": c["running"], "ExitCode": c["exit"],
                      "OOMKilled": False}
            return self.reply(200, {"Id": c["id"], "Name": "/" + c["name"],
                                    "State": st, "Config": c["config"]})
        if method == "GET" and op == "/logs":
            try:
                with open(os.path.join(LOG_DIR, c["id"]), "rb") as f:
                    lines = f.read().splitlines(True)
            except OSError:
                lines = []
            tail = int(q.get("tail") or 0)
            out = b""
            for ln in lines[-tail:] if tail else lines:
                out += bytes([2, 0, 0, 0]) + len(ln).to_bytes(4, "big") + ln
            return self.reply(200, out, "application/vnd.docker.raw-stream")
        if method == "POST" and op == "/kill":
            if not c["running"]:
                return self.err(409, "container is not running")
            kill(c)
            return self.reply(204)
        if method == "DELETE" and op is None:
            f = fault("delete")
            if f:
                return self.err(f["status"], f["message"])
            if c["running"] and q.get("force") not in ("1", "true"):
                return self.err(409, "container is running")
            kill(c)
            with LOCK:
                CONTAINERS.pop(c["id"], None)
            return self.reply(204)
        return self.err(404, "page not found")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("fake", 0)


def main():
    sock = sys.argv[1]
    IMAGES.update(sys.argv[2:])
    if os.path.exists(sock):
        os.unlink(sock)
    srv = Server(sock, Handler)

    def stop(*_):
        with LOCK:
            for c in CONTAINERS.values():
                kill(c)
        os.unlink(sock)
        for f in os.listdir(LOG_DIR):
            os.unlink(os.path.join(LOG_DIR, f))
        os.rmdir(LOG_DIR)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    os.write(1, b"ready\n")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    srv.serve_forever()


if __name__ == "__main__":
    main()
