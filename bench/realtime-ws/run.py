#!/usr/bin/env python3
"""WebSocket realtime benchmark of Alyx (not a test): GET /api/realtime on
loopback against a bare libwebsockets broadcast of the same bytes to the
same clients, measured in the same run (docs/realtime.md "Benchmark").

    python3 bench/realtime-ws/run.py            # builds build-bench/ first
    python3 bench/realtime-ws/run.py --quick    # fewer writes, 2,000 idle

Parts, each bounded in time and count:
  latency     1, 100, 1,000 subscribers of one live query (sort -bseq,
              limit = the number of writes, so none is coalesced away by a
              later one and every stall is measured); a writer stamps each document with CLOCK_MONOTONIC
              ns just before alyx_doc_create() in the server's process
              (ws-host); ws-load reports receipt - stamp per delivery and,
              per write, its last receipt.  The bare server (ws-bare, as
              many lws contexts as alyx has service threads) stamps and
              broadcasts a captured alyx delta the same way.
  throughput  1,000 subscribers, writes back to back: deliveries/s.
  single      1,000 subscribers again with alyx on one service thread (one
              lws context, like the bare server).
  rest        the same through the real alyxd, ws-load itself writing with
              POST /api/collections/items (stamp just before the request).
  filtered    1,000 subscribers with 10 accounts' tokens on a collection
              whose read rule is doc.owner == auth.id (each document
              reaches 100 of them); the same with an explicit owner filter.
  idle        10,000 idle WebSockets: server RSS per connection (VmRSS
              after - before) for alyxd and the bare server.
  http        GET /bench/hello with wrk, 0 and 5,000 idle WebSockets open,
              alyxd --loop poll and --loop ev.
  create      POST /api/collections/items with wrk (REST create, for scale).

Servers bind 127.0.0.1 and are stopped by PID.  Needs wrk.
"""
import argparse
import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(ROOT / "bench/http"))
from bench_http import parse_wrk, post_json  # noqa: E402

FIELDS = """    fields:
      id: {type: uuid, primary: true, default: auto}
      bseq: {type: int, index: true}
      bts: {type: int}
      grp: {type: string, index: true}
      owner: {type: string, nullable: true, index: true}
      pad: {type: string}
"""
SCHEMA = ("version: 1\ncollections:\n  items:\n" + FIELDS +
          "    rules:\n      create: \"true\"\n      read: \"true\"\n"
          "  owned:\n" + FIELDS +
          "    rules:\n      create: \"true\"\n"
          "      read: \"auth.id != null && doc.owner == auth.id\"\n")

CONFIG = """database:
  path: data/alyx.db
auth:
  jwt:
    secret: "wsbench-secret-0123456789-0123456789-abcdef"
    access_ttl: 6h
realtime:
  max_connections: 30000
"""

LUA_CREATE = """
local n = 0
local hdr = {["Content-Type"] = "application/json"}
request = function()
  n = n + 1
  return wrk.format("POST", "/api/collections/items", hdr, string.format(
    '{"bseq":%d,"bts":0,"grp":"rest","pad":"created by wrk"}', n))
end
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def uptime():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Child:
    """A child process with line-based stdout read under a deadline."""

    def __init__(self, argv, name, stdin=True, env=None, cwd=None):
        self.name = name
        self.errf = tempfile.TemporaryFile()
        self.p = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.errf, env=env, cwd=cwd)
        self.buf = b""

    def readline(self, timeout):
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise SystemExit("%s: no answer within %.0f s%s" % (
                    self.name, timeout, self.stderr_tail()))
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                b = os.read(self.p.stdout.fileno(), 65536)
                if not b:
                    raise SystemExit("%s exited (%s)%s" % (
                        self.name, self.p.poll(), self.stderr_tail()))
                self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def expect(self, prefix, timeout):
        while True:
            line = self.readline(timeout)
            if line.startswith(prefix):
                return line

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def stderr_tail(self):
        self.errf.seek(0)
        t = self.errf.read().decode(errors="replace").strip()
        return (": " + t[-800:]) if t else ""

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def cpu(self):
        """utime+stime of the process; for ws-host without its main
        thread, the in-process writer (the server's threads only)."""
        def ticks(path):
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        t = ticks("/proc/%d/stat" % self.p.pid)
        if self.name == "ws-host":
            t -= ticks("/proc/%d/task/%d/stat" % (self.p.pid, self.p.pid))
        return t / TICK

    def stop(self, quit_cmd=True, timeout=30):
        if self.p.poll() is None:
            try:
                if quit_cmd and self.p.stdin:
                    self.send("quit")
                    self.p.stdin.close()
                else:
                    if self.p.stdin:
                        self.p.stdin.close()
                    self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Bench:
    def __init__(self, args, bindir, alyxd, work):
        self.a = args
        self.bin = bindir
        self.alyxd_bin = alyxd
        self.work = work
        self.proj = work / "proj"
        self.base = 1_000_000   # every run writes fresh bseq values
        self.grp_n = 0
        self.results = {}

    # -- processes ------------------------------------------------------
    def host(self, loop=None, threads=None):
        loop = loop or self.a.loop
        threads = threads or self.a.threads
        h = Child([str(self.bin / "ws-host"), "-d", str(self.proj), "-l",
                   loop] + (["-t", str(threads)] if threads else []),
                  "ws-host")
        h.port = int(h.expect("port ", 60).split()[1])
        return h

    def bare(self, template=None, ev=False, contexts=1):
        argv = [str(self.bin / "ws-bare"), "-p", "0", "-n", str(contexts)]
        if template:
            argv += ["-t", str(template)]
        if ev:
            argv.append("-e")
        b = Child(argv, "ws-bare")
        b.port = int(b.expect("listening ", 30).split()[1])
        return b

    def alyxd(self, loop):
        argv = [str(self.alyxd_bin), "--dir", str(self.proj), "--port", "0",
                "--host", "127.0.0.1", "--loop", loop, "--quiet"]
        if self.a.threads:
            argv += ["--threads", str(self.a.threads)]
        env = dict(os.environ, ALYX_BENCH_ROUTES="1")
        env.pop("ALYX_PORT", None)
        env.pop("ALYX_HOST", None)
        d = Child(argv, "alyxd", stdin=False, env=env)
        # alyxd logs on stderr: wait for its "listening" line there.
        deadline = time.time() + 60
        d.port = None
        while d.port is None and time.time() < deadline:
            d.errf.seek(0)
            m = re.search(rb'"msg":"listening","port":"(\d+)"',
                          d.errf.read())
            if m:
                d.port = int(m.group(1))
            elif d.p.poll() is not None:
                raise SystemExit("alyxd exited%s" % d.stderr_tail())
            else:
                time.sleep(0.05)
        if d.port is None:
            raise SystemExit("alyxd did not start")
        return d

    def load(self, mode, port, n, sub, m=0, extra=(), timeout=None):
        argv = [str(self.bin / "ws-load"), mode, "-p", str(port), "-n",
                str(n), "-T", str(timeout or self.a.timeout)]
        if sub:
            argv += ["-s", sub]
        if mode == "latency":
            argv += ["-m", str(m), "-b", str(self.base)]
        argv += list(extra)
        c = Child(argv, "ws-load")
        line = c.expect("ready ", timeout or self.a.timeout)
        c.ok, c.failed = map(int, line.split()[1:3])
        return c

    # -- parts ----------------------------------------------------------
    def sub(self, coll, grp, limit, filt=None):
        f = filt or {"grp": {"$eq": grp}}
        return json.dumps({"id": "s1", "type": "subscribe", "payload": {
            "collection": coll, "filter": f, "sort": ["-bseq"],
            "limit": limit}}, separators=(",", ":"))

    def fresh_grp(self):
        self.grp_n += 1
        return "g%d_%d" % (os.getpid(), self.grp_n)

    def deliver(self, server, kind, n, m, iv_us, coll="items", limit=10,
                extra=(), filt=None, per_write=None):
        """One measured run: n subscribers, m writes every iv_us."""
        grp = self.fresh_grp()
        sub = self.sub(coll, grp, limit, filt)
        c = self.load("latency", server.port, n, sub, m, extra=extra)
        if c.failed:
            c.stop(quit_cmd=False)
            raise SystemExit("%s: %d of %d subscriptions failed%s" % (
                kind, c.failed, n, c.stderr_tail()))
        cpu0 = server.cpu()
        if kind == "bare":
            server.send("fire %d %d %d" % (self.base, m, iv_us))
        else:
            server.send("fire %s %d %d %d %s" % (coll, self.base, m, iv_us,
                                                   grp))
        done = server.expect("done ", self.a.timeout).split()
        r = json.loads(c.readline(self.a.timeout + 30))
        cpu1 = server.cpu()
        c.stop(quit_cmd=False)
        if kind != "bare" and len(done) >= 6:
            r["write_us"] = {"p50": float(done[3]), "p95": float(done[4]),
                             "p99": float(done[5])}
            r["write_errors"] = int(done[2])
        r["server_cpu_s"] = cpu1 - cpu0
        r["server_cpu_us_per_delivery"] = (
            (cpu1 - cpu0) * 1e6 / r["deliveries"] if r["deliveries"] else
            None)
        self.base += m
        return r

    def latency_and_throughput(self):
        a = self.a
        h = self.host()
        tmpl = self.work / "delta-template.json"
        # Warm-up (and the template: a real delta, captured verbatim).
        self.deliver(h, "alyx", 1, 20, 2000, extra=["-D", str(tmpl)])
        if not tmpl.exists():
            raise SystemExit("no delta received from alyx: is "
                             "/api/realtime served?")
        # As many contexts (threads) as alyx has service threads.
        b = self.bare(template=tmpl, ev=(a.loop == "ev"),
                      contexts=a.threads or os.cpu_count() or 1)
        self.deliver(b, "bare", 1, 20, 2000)
        plan = [(1, a.writes1, 2000), (100, a.writes100, 5000),
                (1000, a.writes1000, 20000)]
        try:
            runs = {}
            for rnd in range(a.rounds):
                for n, m, iv in plan:
                    for kind, srv in (("alyx", h), ("bare", b)):
                        # A window that holds every write: none is pushed
                        # out (coalesced away) by a later one, so a
                        # stalled delivery is measured, not hidden.
                        r = self.deliver(srv, kind, n, m, iv,
                                         limit=min(1000, max(10, m)))
                        runs.setdefault((n, kind), []).append(r)
                        log("latency %-4s n=%-4d round %d  last p50/p95/p99 "
                            "%s ms  deliveries %d/%d  %.2f µs CPU/delivery"
                            % (kind, n, rnd + 1, fmt3(r["last"]),
                               r["deliveries"], r["expected"],
                               r["server_cpu_us_per_delivery"] or 0))
            for (n, kind), rs in runs.items():
                self.results["lat%d_%s" % (n, kind)] = median_runs(rs)
            n, m = 1000, a.burst
            for kind, srv in (("alyx", h), ("bare", b)):
                r = self.deliver(srv, kind, n, m, 0, limit=1000)
                self.results["burst_%s" % kind] = r
                log("burst   %-4s n=%d m=%d  %.0f deliveries/s (%d/%d)" % (
                    kind, n, m, r["deliveries_per_s"], r["deliveries"],
                    r["expected"]))
            # Filtered: 10 accounts, 1,000 connections, each document
            # visible to the 100 connections of its owner.
            h.send("users 10")
            toks = []
            while True:
                line = h.readline(120)
                if line.startswith("ok "):
                    break
                if line.startswith("token "):
                    toks.append(line.split()[1:3])
            if len(toks) < 10:
                raise SystemExit("could not create accounts%s" %
                                 h.stderr_tail())
            tf, of = self.work / "tokens.txt", self.work / "owners.txt"
            tf.write_text("".join(t + "\n" for t, _ in toks))
            of.write_text("".join(o + "\n" for _, o in toks))
            exp = str(a.burst * 100)
            # Not told how many to expect: it ends 2 s after the last
            # delivery, so a server that ignores the rule is seen.
            r = self.deliver(h, "alyx", 1000, a.burst, 0, coll="owned",
                             limit=1000, extra=["-k", str(tf)])
            r["expected"] = a.burst * 100
            r["rules_enforced"] = r["deliveries"] <= a.burst * 100
            self.results["rules_alyx"] = r
            log("rules   alyx n=1000 m=%d  %.0f deliveries/s (%d/%s)%s" % (
                a.burst, r["deliveries_per_s"], r["deliveries"], exp,
                "" if r["rules_enforced"] else "  RULES NOT APPLIED"))
            r = self.deliver(h, "alyx", 1000, a.burst, 0, coll="items",
                             limit=1000, extra=["-k", str(tf), "-O", str(of),
                                                "-e", exp],
                             filt={"owner": {"$eq": "%OWNER%"}})
            self.results["ownerfilter_alyx"] = r
            log("filter  alyx n=1000 m=%d  %.0f deliveries/s (%d/%s)" % (
                a.burst, r["deliveries_per_s"], r["deliveries"], exp))
        finally:
            b.stop()
            h.stop()

    def single_thread(self):
        """1,000 subscribers again, alyx with one service thread: one lws
        context each, like the bare server (the template of the latency
        part, or the built-in delta of the same shape)."""
        a = self.a
        h = self.host(threads=1)
        tmpl = self.work / "delta-template.json"
        b = self.bare(template=tmpl if tmpl.exists() else None,
                      ev=(a.loop == "ev"))
        try:
            self.deliver(h, "alyx", 1, 20, 2000)
            rs = {}
            for rnd in range(a.rounds):
                for kind, srv in (("alyx", h), ("bare", b)):
                    r = self.deliver(srv, kind, 1000, a.writes1000, 20000,
                                     limit=min(1000, max(10, a.writes1000)))
                    rs.setdefault(kind, []).append(r)
                    log("1-thread %-4s n=1000 round %d  last p50/p95/p99 %s "
                        "ms  %.2f µs CPU/delivery" % (
                            kind, rnd + 1, fmt3(r["last"]),
                            r["server_cpu_us_per_delivery"] or 0))
            for kind, v in rs.items():
                self.results["t1_%s" % kind] = median_runs(v)
        finally:
            b.stop()
            h.stop()

    def rest_latency(self):
        """Real alyxd; ws-load writes through POST and stamps before it."""
        d = self.alyxd(self.a.loop)
        try:
            for n, m, iv in ((1, self.a.writes1, 2000),
                             (1000, self.a.writes1000, 20000)):
                grp = self.fresh_grp()
                c = self.load("latency", d.port, n,
                              self.sub("items", grp, min(1000, max(10, m))),
                              m,
                              extra=["-W", "items", "-i", str(iv), "-g",
                                     grp])
                r = json.loads(c.readline(self.a.timeout + 30))
                c.stop(quit_cmd=False)
                self.base += m
                self.results["rest%d_alyxd" % n] = r
                log("rest    alyxd n=%-4d last p50/p95/p99 %s ms  "
                    "deliveries %d/%d  write errors %d" % (
                        n, fmt3(r["last"]), r["deliveries"], r["expected"],
                        r["rest_errors"]))
        finally:
            d.stop(quit_cmd=False)

    def idle_rss(self):
        """Each kind on a fresh server: VmRSS after - before / conns."""
        n = self.a.idle
        out = {}
        for kind in ("alyxd", "alyxd_sub", "bare"):
            srv = self.alyxd("poll") if kind != "bare" else self.bare()
            try:
                sub = None
                if kind != "bare":
                    http_get(srv.port, "/health/live")
                if kind == "alyxd_sub":
                    # One subscription per connection: one shared live
                    # query, limit 10, over 10 documents.
                    grp = self.fresh_grp()
                    for i in range(10):
                        post_json(srv.port, "/api/collections/items", {
                            "bseq": i, "bts": 0, "grp": grp, "pad": "x"})
                    sub = self.sub("items", grp, 10)
                time.sleep(0.5)
                before = srv.rss_kib()
                c = self.load("idle", srv.port, n, sub, timeout=180)
                time.sleep(1.0)
                after = srv.rss_kib()
                out[kind] = {"conns": c.ok, "failed": c.failed,
                             "rss_before_kib": before,
                             "rss_after_kib": after,
                             "kib_per_conn": (after - before) / max(1, c.ok)}
                c.stop(quit_cmd=False)
                log("idle    %-9s %d conns (%d failed)  %.2f KiB/conn" % (
                    kind, c.ok, c.failed, out[kind]["kib_per_conn"]))
            finally:
                srv.stop(quit_cmd=(kind == "bare"))
        self.results["idle"] = out

    def wrk(self, port, path, script=None):
        base = ["wrk", "-t1", "-c64", "--latency"]
        if script:
            base += ["-s", str(script)]
        url = "http://127.0.0.1:%d%s" % (port, path)
        subprocess.run(base + ["-d1s", url], capture_output=True,
                       timeout=60)
        p = subprocess.run(base + ["-d%ds" % self.a.duration, url],
                           capture_output=True, text=True,
                           timeout=self.a.duration + 60)
        if p.returncode:
            raise SystemExit("wrk failed: " + p.stderr)
        r = parse_wrk(p.stdout)
        return {"rps": r["rps"], "requests": r["requests"],
                "non2xx": r["non2xx"]}

    def http_with_idle(self):
        out = {}
        n = self.a.http_idle
        for loop in ("poll", "ev"):
            d = self.alyxd(loop)
            try:
                for idle in (0, n):
                    c = (self.load("idle", d.port, idle, None, timeout=120)
                         if idle else None)
                    cpu0 = d.cpu()
                    r = self.wrk(d.port, "/bench/hello")
                    r["cpu_us_per_req"] = ((d.cpu() - cpu0) * 1e6 /
                                           max(1, r["requests"]))
                    if c:
                        r["idle_ok"] = c.ok
                        c.stop(quit_cmd=False)
                    out["%s_%d" % (loop, idle)] = r
                    log("http    %-4s idle=%-5d %8.0f req/s  %.1f µs CPU/req"
                        % (loop, idle, r["rps"], r["cpu_us_per_req"]))
            finally:
                d.stop(quit_cmd=False)
        self.results["http"] = out

    def rest_create(self):
        script = self.work / "create.lua"
        script.write_text(LUA_CREATE)
        d = self.alyxd("poll")
        try:
            cpu0 = d.cpu()
            r = self.wrk(d.port, "/", script)
            r["cpu_us_per_req"] = (d.cpu() - cpu0) * 1e6 / max(
                1, r["requests"])
        finally:
            d.stop(quit_cmd=False)
        self.results["create"] = r
        log("create  %.0f req/s  %.1f µs CPU/req  non-2xx %d" % (
            r["rps"], r["cpu_us_per_req"], r["non2xx"]))


def http_get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    c.getresponse().read()
    c.close()


def fmt3(p, key=None):
    if not p:
        return "-"
    return "%.2f / %.2f / %.2f" % (p["p50"] / 1e3, p["p95"] / 1e3,
                                   p["p99"] / 1e3)


def median_runs(rs):
    """Each figure is the median of the rounds' figures (the rounds
    are interleaved with the other server's, so both meet the same
    load); counts are summed."""
    import statistics
    out = {"rounds": rs}
    for k in ("lat", "first", "last", "write_us"):
        vals = [r[k] for r in rs if r.get(k)]
        if vals:
            out[k] = {q: statistics.median(v[q] for v in vals)
                      for q in vals[0] if q != "n"}
    for k in ("deliveries", "expected", "messages"):
        out[k] = sum(r[k] for r in rs)
    cpu = [r["server_cpu_us_per_delivery"] for r in rs
           if r["server_cpu_us_per_delivery"] is not None]
    out["server_cpu_us_per_delivery"] = (statistics.median(cpu) if cpu
                                         else None)
    return out


def short(r):
    """Writes some subscriber never received (coalesced away)."""
    if r["deliveries"] >= r["expected"]:
        return ""
    return " (%d of %d delivered)" % (r["deliveries"], r["expected"])


def ratio(x, y):
    return "%.2f" % (x / y) if x and y else "-"


def table(res, args, load_start, load_end):
    L = []
    L.append("| subscribers | measure (ms, p50 / p95 / p99; median of %d "
             "rounds) | alyx | bare lws (same number of threads) | alyx ÷ bare (p50) | target |"
             % args.rounds)
    L.append("|---:|---|---|---|---:|---|")
    for n in (1, 100, 1000):
        a, b = res.get("lat%d_alyx" % n), res.get("lat%d_bare" % n)
        if not a or not b:
            continue
        keys = [("last", "stamp → last receipt of a write"),
                ("lat", "stamp → each receipt")]
        if n > 1:
            keys.append(("first", "stamp → first receipt of a write"))
        for key, what in keys:
            tgt = ""
            if n == 1 and key == "lat":
                ok = a["lat"]["p95"] < 2000
                tgt = "p95 < 2 ms: %s" % ("met" if ok else "MISSED")
            if n == 1000 and key == "last":
                rr = a["last"]["p50"] / b["last"]["p50"]
                tgt = "≤ 1.5×: %s" % ("met" if rr <= 1.5 else "MISSED")
            L.append("| %d | %s | %s%s | %s%s | %s | %s |" % (
                n, what, fmt3(a[key]), short(a), fmt3(b[key]), short(b),
                ratio(a[key]["p50"], b[key]["p50"]), tgt))
        if n >= 100:
            L.append("| %d | server CPU µs per delivery | %.2f | %.2f | %s | |"
                     % (n, a["server_cpu_us_per_delivery"] or 0,
                        b["server_cpu_us_per_delivery"] or 0,
                        ratio(a["server_cpu_us_per_delivery"],
                              b["server_cpu_us_per_delivery"])))
        if "write_us" in a:
            L.append("| %d | the write call itself (alyx_doc_create) | "
                     "%.2f / %.2f / %.2f | | | |" % (
                         n, a["write_us"]["p50"] / 1e3,
                         a["write_us"]["p95"] / 1e3,
                         a["write_us"]["p99"] / 1e3))
    a, b = res.get("t1_alyx"), res.get("t1_bare")
    if a and b:
        rr = a["last"]["p50"] / b["last"]["p50"]
        L.append("| 1000 | one service thread (alyx --threads 1 vs the "
                 "bare server's one context): stamp → last receipt | %s | "
                 "%s | %s | ≤ 1.5×: %s |" % (
                     fmt3(a["last"]), fmt3(b["last"]),
                     ratio(a["last"]["p50"], b["last"]["p50"]),
                     "met" if rr <= 1.5 else "MISSED"))
        L.append("| 1000 | one service thread: server CPU µs per delivery "
                 "| %.2f | %.2f | %s | |" % (
                     a["server_cpu_us_per_delivery"] or 0,
                     b["server_cpu_us_per_delivery"] or 0,
                     ratio(a["server_cpu_us_per_delivery"],
                           b["server_cpu_us_per_delivery"])))
    for n in (1, 1000):
        r = res.get("rest%d_alyxd" % n)
        if r:
            L.append("| %d | alyxd, written through REST: request sent → "
                     "last receipt | %s | | | |" % (n, fmt3(r["last"])))
    if len(L) == 2:
        L = []
    T = ["", "| throughput and memory | alyx | bare lws | alyx ÷ bare | "
         "target |", "|---|---:|---:|---:|---|"]
    L += T
    a, b = res.get("burst_alyx"), res.get("burst_bare")
    if a and b:
        L.append("| deliveries/s, 1,000 subscribers, %d writes back to back "
                 "(delivered/expected; messages) | %.0f (%d/%d; %d) | "
                 "%.0f (%d/%d; %d) | %s | |"
                 % (args.burst, a["deliveries_per_s"], a["deliveries"],
                    a["expected"], a["messages"], b["deliveries_per_s"],
                    b["deliveries"], b["expected"], b["messages"],
                    ratio(a["deliveries_per_s"], b["deliveries_per_s"])))
        L.append("| server CPU µs per delivery | %.2f | %.2f | %s | |" % (
            a["server_cpu_us_per_delivery"] or 0,
            b["server_cpu_us_per_delivery"] or 0,
            ratio(a["server_cpu_us_per_delivery"],
                  b["server_cpu_us_per_delivery"])))
    r = res.get("rules_alyx")
    if r:
        L.append("| filtered by the read rule: deliveries/s (1,000 "
                 "subscribers, 10 accounts; delivered/expected; server CPU "
                 "µs per delivery) | %.0f (%d/%d; %.2f)%s | | | ≥ 50k/s: %s |"
                 % (r["deliveries_per_s"], r["deliveries"], r["expected"],
                    r["server_cpu_us_per_delivery"] or 0,
                     "" if r["rules_enforced"] else " rules NOT applied",
                     "met" if r["rules_enforced"] and
                     r["deliveries_per_s"] >= 50000 else "MISSED"))
    r = res.get("ownerfilter_alyx")
    if r:
        L.append("| filtered by an owner $eq filter (same accounts): "
                 "deliveries/s | %.0f (%d/%d; %.2f) | | | |" % (
                     r["deliveries_per_s"], r["deliveries"],
                     r["expected"], r["server_cpu_us_per_delivery"] or 0))
    idle = res.get("idle")
    if idle:
        a, b = idle["alyxd"], idle["bare"]
        L.append("| idle WebSockets: server RSS per connection (KiB; %d "
                 "conns) | %.2f | %.2f | %s | < 16 KiB: %s |" % (
                     a["conns"], a["kib_per_conn"], b["kib_per_conn"],
                     ratio(a["kib_per_conn"], b["kib_per_conn"]),
                     "met" if a["kib_per_conn"] < 16 else "MISSED"))
        a = idle.get("alyxd_sub")
        if a:
            L.append("| the same, each connection with one subscription "
                     "(shared query, 10 documents) | %.2f | | | |" %
                     a["kib_per_conn"])
    if L[-len(T):] == T:
        del L[-len(T):]
    L.append("")
    h = res.get("http")
    if h:
        n = args.http_idle
        L.append("| alyxd GET /bench/hello (wrk -c64) | no WebSocket | %d "
                 "idle WebSockets | ratio |" % n)
        L.append("|---|---:|---:|---:|")
        for loop in ("poll", "ev"):
            x, y = h.get("%s_0" % loop), h.get("%s_%d" % (loop, n))
            if x and y:
                L.append("| --loop %s: req/s (server CPU µs/req) | %.0f "
                         "(%.1f) | %.0f (%.1f) | %.2f |" % (
                             loop, x["rps"], x["cpu_us_per_req"], y["rps"],
                             y["cpu_us_per_req"], y["rps"] / x["rps"]))
    c = res.get("create")
    if c:
        L.append("")
        L.append("REST create (POST /api/collections/items, wrk -c64, "
                 "--loop poll): %.0f req/s, %.1f µs server CPU/req, "
                 "non-2xx %d." % (c["rps"], c["cpu_us_per_req"],
                                  c["non2xx"]))
    L.append("")
    L.append("Load average (1/5/15 min) at start: %s; at end: %s; %d CPUs."
             % (load_start, load_end, os.cpu_count() or 0))
    return "\n".join(L)


def build(builddir):
    if not (builddir / "build.ninja").exists():
        subprocess.run(["meson", "setup", str(builddir), "-Dbench=true",
                        "-Dbuildtype=release"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", str(builddir), "daemon/alyxd",
                    "bench/realtime-ws/ws-load", "bench/realtime-ws/ws-bare",
                    "bench/realtime-ws/ws-host"], check=True,
                   stdout=subprocess.DEVNULL)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < need:
        raise SystemExit("ulimit -n is %d (hard %d); %d connections need "
                         "about %d" % (soft, hard, need - 200, need))
    return soft


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build-bench"),
                    help="build directory (set up with -Dbench=true "
                    "-Dbuildtype=release if missing)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="server service threads (default: one per CPU)")
    ap.add_argument("--loop", default="poll", choices=["poll", "ev"],
                    help="event loop of the latency/throughput server")
    ap.add_argument("--rounds", type=int, default=3,
                    help="latency rounds (alyx and bare interleaved); "
                    "the table gives the median of each figure")
    ap.add_argument("--writes1", type=int, default=500)
    ap.add_argument("--writes100", type=int, default=200)
    ap.add_argument("--writes1000", type=int, default=100)
    ap.add_argument("--burst", type=int, default=300,
                    help="writes back to back in the throughput runs")
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--http-idle", type=int, default=5000)
    ap.add_argument("--duration", type=int, default=5,
                    help="seconds per wrk run")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--parts",
                    default="latency,single,rest,idle,http,create")
    ap.add_argument("--quick", action="store_true",
                    help="fewer writes, 2,000 idle connections")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args()
    if args.quick:
        args.writes1, args.writes100, args.writes1000 = 200, 100, 40
        args.rounds = 1
        args.burst, args.idle, args.http_idle, args.duration = \
            100, 2000, 2000, 3
    parts = set(args.parts.split(","))
    if ("http" in parts or "create" in parts) and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed")
    builddir = Path(args.build)
    if not args.no_build:
        build(builddir)
    nofile = raise_nofile(max(args.idle, args.http_idle, 1000) + 200)
    load_start = uptime()
    log("load average %s, ulimit -n %d" % (load_start, nofile))

    work = Path(tempfile.mkdtemp(prefix="alyx-bench-ws-"))
    try:
        proj = work / "proj"
        proj.mkdir()
        (proj / "alyx.yaml").write_text(CONFIG)
        (proj / "schema.yaml").write_text(SCHEMA)
        b = Bench(args, builddir / "bench/realtime-ws",
                  builddir / "daemon/alyxd", work)
        if "latency" in parts:
            b.latency_and_throughput()
        if "single" in parts:
            b.single_thread()
        if "rest" in parts:
            b.rest_latency()
        if "idle" in parts:
            b.idle_rss()
        if "http" in parts:
            b.http_with_idle()
        if "create" in parts:
            b.rest_create()
        load_end = uptime()
        print(table(b.results, args, load_start, load_end))
        if args.json:
            b.results["load"] = {"start": load_start, "end": load_end}
            Path(args.json).write_text(json.dumps(b.results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
