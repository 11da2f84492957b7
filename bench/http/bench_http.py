#!/usr/bin/env python3
"""HTTP benchmark of alyxd (not a test): wrk on loopback against the blog
example with 100k posts.

Routes: get-by-id, list-20 (filtered by author, sorted by -created_at),
create (POST from a wrk Lua script), and in the same run the same server
answering a fixed tiny JSON reply (GET /bench/hello, ALYX_BENCH_ROUTES=1):
the HTTP ceiling.  These run anonymously on the blog schema with every
rule opened to "true".  Then (issue 5) the server restarts on the same
database with the blog's own rules and get-by-id and list-20 run again
with a signed-in user's Bearer token (get: published posts, which the
read rule lets a reader see; the rule is pushed into the SQL): the cost
of authentication plus rule enforcement, as a ratio of the anonymous
open-rules requests of the same run (target >= 0.8).  Reports req/s,
p50/p99, server CPU per request (the server's utime+stime over the run /
requests), each route as a ratio of the ceiling, and 1 vs N service
threads.  get and list run in --rounds rounds, each round between two
runs of the ceiling, and a route's ratio is the median over the rounds of
its req/s over the mean of the two ceilings around it (create runs once,
last, also between two); the ratios of every round are listed too.

    python3 bench/http/bench_http.py --alyxd build/daemon/alyxd

Needs wrk.  Servers bind 127.0.0.1 and are stopped by PID.
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Alyxd:
    def __init__(self, binary, proj, threads, loop, quiet=True):
        env = dict(os.environ, ALYX_BENCH_ROUTES="1")
        env.pop("ALYX_PORT", None)
        env.pop("ALYX_HOST", None)
        self.logf = open(Path(proj).parent / "alyxd.log", "a")
        argv = [binary, "--dir", str(proj), "--port", "0", "--host",
                "127.0.0.1", "--loop", loop]
        if threads:
            argv += ["--threads", str(threads)]
        if quiet:
            argv.append("--quiet")
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, env=env,
                                     text=True)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("alyxd exited: %s" % self.proc.wait())
            self.logf.write(line)
            m = re.search(r'"msg":"listening","port":"(\d+)"', line)
            if m:
                self.port = int(m.group(1))
        # Drain stderr in the background so the server never blocks.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stderr,
                                      stdout=self.logf)

    def cpu(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.drain.wait()
        self.logf.close()
        if rc != 0:
            raise SystemExit("alyxd exited with %d" % rc)


def post_json(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", path, json.dumps(body),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise SystemExit("%s -> %d %s" % (path, r.status, data[:300]))
    return json.loads(data)


def published(i):
    """Two posts in three are published, independently of the author and
    of created_at.  (`i % 3 != 0` was not: created_at's month is i % 12,
    so an author's newest posts all shared one i % 3, and for a third of
    the authors the newest third of their posts was all unpublished: a
    list under the blog's read rule walked ~330 hidden rows before its
    first visible one.)"""
    return int(hashlib.sha256(b"%d" % i).hexdigest()[:8], 16) % 3 != 0


def seed(port, n_posts, workdir):
    """101 users and n_posts posts through POST /api/batch.  The last user
    writes the create route's posts, so the list route's authors (the
    first 100) keep ~n_posts/100 posts each however often it runs."""
    users = [str(uuid.UUID(int=(1 << 62) | i, version=4))
             for i in range(101)]
    post_json(port, "/api/batch", {"requests": [
        {"method": "POST", "url": "/api/collections/users",
         "body": {"id": u, "email": "u%d@example.com" % i,
                  "name": "User %d" % i}}
        for i, u in enumerate(users)]})
    ids = []
    t0 = time.time()
    for start in range(0, n_posts, 1000):
        reqs = []
        for i in range(start, min(start + 1000, n_posts)):
            pid = str(uuid.UUID(int=(2 << 62) | i, version=4))
            ids.append(pid)
            reqs.append({"method": "POST", "url": "/api/collections/posts",
                         "body": {
                             "id": pid, "title": "Post number %d" % i,
                             "slug": "post-%d" % i,
                             "content": ("Lorem ipsum dolor sit amet, "
                                         "consectetur adipiscing elit. ") * 3,
                             "excerpt": "Excerpt %d" % i,
                             "author_id": users[i % 100],
                             "published": published(i),
                             "tags": ["t%d" % (i % 7), "bench"],
                             "view_count": i % 1000,
                             "created_at": "2026-%02d-%02dT%02d:%02d:00.000Z"
                             % (1 + i % 12, 1 + i % 28, i % 24, i % 60)}})
        post_json(port, "/api/batch", {"requests": reqs})
    log("seeded %d posts in %.1f s" % (n_posts, time.time() - t0))
    (workdir / "pub_ids.txt").write_text("\n".join(
        pid for i, pid in enumerate(ids) if published(i)) + "\n")
    (workdir / "ids.txt").write_text("\n".join(ids) + "\n")
    (workdir / "authors.txt").write_text("\n".join(users[:100]) + "\n")
    (workdir / "writer.txt").write_text(users[100] + "\n")
    return users


# The request scripts build their requests once, in init() (after wrk has
# set the Host header), and request() only picks one at random: the same
# requests as formatting each one with wrk.format(), without the client's
# per-request Lua string building, which ran on the same two vCPUs as the
# server (get-by-id: +20 to +46 % req/s from that alone, measured on one
# server; docs/alyxd.md, "Fifth session").
# The ceiling, /bench/hello, is wrk's static request and costs the client
# less still.
LUA_PICK = """
request = function() return reqs[math.random(nreq)] end
"""

LUA_GET = """
reqs = {}
init = function(args)
  for line in io.lines(os.getenv("BENCH_IDS")) do
    reqs[#reqs + 1] = wrk.format("GET", "/api/collections/posts/" .. line)
  end
  nreq = #reqs
  math.randomseed(os.time())
end
""" + LUA_PICK

LUA_GET_AUTH = """
reqs = {}
init = function(args)
  local hdr = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
  for line in io.lines(os.getenv("BENCH_PUB_IDS")) do
    reqs[#reqs + 1] = wrk.format("GET", "/api/collections/posts/" .. line,
      hdr)
  end
  nreq = #reqs
  math.randomseed(os.time())
end
""" + LUA_PICK

# Each request a random published post with one of 4096 tokens: 65,536
# such pairs drawn once (a token is as likely as before to miss the
# server's verified-token cache).
LUA_GET_MISS = """
reqs = {}
init = function(args)
  local ids, toks = {}, {}
  for line in io.lines(os.getenv("BENCH_PUB_IDS")) do ids[#ids + 1] = line end
  for line in io.lines(os.getenv("BENCH_TOKENS")) do toks[#toks + 1] = line end
  math.randomseed(os.time())
  for i = 1, 65536 do
    reqs[i] = wrk.format("GET", "/api/collections/posts/" ..
      ids[math.random(#ids)],
      {["Authorization"] = "Bearer " .. toks[math.random(#toks)]})
  end
  nreq = #reqs
end
""" + LUA_PICK

LUA_LIST_AUTH = """
reqs = {}
init = function(args)
  local hdr = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
  for line in io.lines(os.getenv("BENCH_AUTHORS")) do
    reqs[#reqs + 1] = wrk.format("GET",
      "/api/collections/posts?filter=author_id:eq:" .. line ..
      "&sort=-created_at&limit=20", hdr)
  end
  nreq = #reqs
  math.randomseed(os.time())
end
""" + LUA_PICK

LUA_LIST = """
reqs = {}
init = function(args)
  for line in io.lines(os.getenv("BENCH_AUTHORS")) do
    reqs[#reqs + 1] = wrk.format("GET",
      "/api/collections/posts?filter=author_id:eq:" .. line ..
      "&sort=-created_at&limit=20")
  end
  nreq = #reqs
  math.randomseed(os.time())
end
""" + LUA_PICK

# Every create needs its own slug, so the body is formatted per request;
# the head is made once.
LUA_CREATE = """
local n = 0
local author = os.getenv("BENCH_AUTHOR")
math.randomseed(os.time() + os.clock() * 1e6)
local tag = tostring(math.random(1, 1e9))
local head
init = function(args)
  head = "POST /api/collections/posts HTTP/1.1\\r\\nHost: " ..
    wrk.headers["Host"] ..
    "\\r\\nContent-Type: application/json\\r\\nContent-Length: "
end
request = function()
  n = n + 1
  local body = string.format(
    '{"title":"bench %d","slug":"b-%s-%d","content":"created by wrk",' ..
    '"author_id":"%s","tags":["bench"]}', n, tag, n, author)
  return head .. #body .. "\\r\\n\\r\\n" .. body
end
"""


BLOG_SCHEMA = (ROOT / "tests/fixtures/blog/schema.yaml").read_text()


def open_rules(schema):
    """Every collection rule replaced by "true"."""
    return re.sub(r'^(\s+)(create|read|update|delete):\s.*$',
                  r'\1\2: "true"', schema, flags=re.M)


BENCH_SECRET = "bench-secret-0123456789abcdefghijklmn"


def many_tokens(sub, n):
    """n distinct valid access tokens of user `sub` (iat differs), signed
    with the bench project's secret: more than a service thread's token
    cache holds (64 slots), so nearly every request verifies its token."""
    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    out = []
    for k in range(n):
        body = b64(json.dumps({"iss": "alyx", "sub": sub, "role": "user",
                               "iat": now - k, "exp": now + 900}).encode())
        mac = hmac.new(BENCH_SECRET.encode(), (head + "." + body).encode(),
                       hashlib.sha256).digest()
        out.append(head + "." + body + "." + b64(mac))
    return out


def user_token(port):
    """A signed-in reader (role user, author of nothing): registered once,
    then a fresh login.  Returns (token, user id)."""
    cred = {"email": "bench-reader@example.com",
            "password": "Bench-reader-password-1"}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/api/auth/register", json.dumps(cred),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status not in (201, 409):
        raise SystemExit("register -> %d" % r.status)
    c.close()
    r = post_json(port, "/api/auth/login", cred)
    return r["access_token"], r["user"]["id"]


def parse_wrk(out):
    def dur(s):
        v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
        return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[u]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = dur(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = dur(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50_us": p50, "p99_us": p99,
            "non2xx": bad, "socket_errors": m.group(1) if m else ""}


def wrk(srv, path, script, args, env):
    url = "http://127.0.0.1:%d%s" % (srv.port, path)
    base = ["wrk", "-t%d" % args.wrk_threads, "-c%d" % args.connections,
            "--latency"]
    if script:
        base += ["-s", str(script)]
    w = subprocess.run(base + ["-d%ds" % args.warmup, url], env=env,
                       capture_output=True, text=True,
                       timeout=args.warmup + 60)
    # A script that fails to load leaves wrk sending its default GET of
    # the URL, which would be measured as if it were the route.
    if script and w.stderr.strip():
        raise SystemExit("wrk script %s: %s" % (script, w.stderr.strip()))
    c0 = srv.cpu()
    p = subprocess.run(base + ["-d%ds" % args.duration, url], env=env,
                       capture_output=True, text=True,
                       timeout=args.duration + 60)
    c1 = srv.cpu()
    if p.returncode:
        raise SystemExit("wrk failed: " + p.stderr)
    r = parse_wrk(p.stdout)
    r["cpu_us_per_req"] = (c1 - c0) * 1e6 / max(1, r["requests"])
    return r


def median_run(rs, key):
    """The run with the median `key` (the lower middle of an even count)."""
    return sorted(rs, key=lambda r: r[key])[(len(rs) - 1) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alyxd", default=str(ROOT / "build/daemon/alyxd"))
    ap.add_argument("--posts", type=int, default=100000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of get and list between hellos")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="service threads of the N-context runs")
    ap.add_argument("--loop", default="poll", choices=["poll", "ev"])
    ap.add_argument("--workdir", help="keep the project here (reused if "
                    "it has the posts already)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed")

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="alyx-bench-http-")
        work = Path(tmp)
    proj = work / "proj"
    if not (work / "pub_ids.txt").exists():
        shutil.rmtree(proj, ignore_errors=True)
        shutil.copytree(ROOT / "tests/fixtures/blog", proj)
        (proj / "alyx.yaml").write_text(
            "server:\n  max_body: 4mb\ndatabase:\n  path: data/alyx.db\n"
            "auth:\n  jwt:\n    secret: %s\n" % BENCH_SECRET)
        (proj / "schema.yaml").write_text(open_rules(BLOG_SCHEMA))
        srv = Alyxd(args.alyxd, proj, args.threads, args.loop)
        seed(srv.port, args.posts, work)
        srv.stop()
    writer = (work / "writer.txt").read_text().split()[0]
    scripts = {}
    for name, src in (("get", LUA_GET), ("list", LUA_LIST),
                      ("create", LUA_CREATE), ("get_auth", LUA_GET_AUTH),
                      ("list_auth", LUA_LIST_AUTH),
                      ("get_auth_nocache", LUA_GET_MISS)):
        scripts[name] = work / ("%s.lua" % name)
        scripts[name].write_text(src)
    env = dict(os.environ, BENCH_IDS=str(work / "ids.txt"),
               BENCH_PUB_IDS=str(work / "pub_ids.txt"),
               BENCH_AUTHORS=str(work / "authors.txt"),
               BENCH_AUTHOR=writer)

    routes = [("hello", "/bench/hello", None),
              ("get", "/", scripts["get"]),
              ("list", "/", scripts["list"]),
              ("create", "/", scripts["create"])]
    auth_routes = [("get_auth", "/", scripts["get_auth"]),
                   ("list_auth", "/", scripts["list_auth"]),
                   ("get_auth_nocache", "/", scripts["get_auth_nocache"])]
    env["BENCH_TOKENS"] = str(work / "tokens.txt")
    results = {}  # per route@threads: the run reported (the median one)
    runs = {}  # per route@threads: every run

    def measure(srv, threads, name, path, script):
        r = wrk(srv, path, script, args, env)
        log("%-9s threads=%d  %9.0f req/s  p50 %7.0f us  p99 %7.0f "
            "us  %6.1f us CPU/req  non-2xx %d" % (
                name, threads, r["rps"], r["p50_us"], r["p99_us"],
                r["cpu_us_per_req"], r["non2xx"]))
        runs.setdefault("%s@%d" % (name, threads), []).append(r)
        return r

    def run(srv, threads, rts):
        for name, path, script in rts:
            results["%s@%d" % (name, threads)] = measure(
                srv, threads, name, path, script)

    def run_rounds(srv, threads):
        """hello, then rounds of get and list each followed by hello, then
        create and hello: each route's ratio in a round is to the mean of
        the two hellos around it, so a machine that drifts during the run
        moves a route and its ceiling together.  Create comes last: its
        rows grow the table the other routes read."""
        hello_path = routes[0][1]
        by = {name: (path, script) for name, path, script in routes}
        h = measure(srv, threads, "hello", hello_path, None)
        plan = [("get", "list")] * args.rounds + [("create",)]
        for names in plan:
            got = [(name, measure(srv, threads, name, *by[name]))
                   for name in names]
            h2 = measure(srv, threads, "hello", hello_path, None)
            for name, r in got:
                r["ratio"] = r["rps"] / ((h["rps"] + h2["rps"]) / 2)
            h = h2
        for name, _, _ in routes:
            rs = runs["%s@%d" % (name, threads)]
            if name == "hello":
                results["%s@%d" % (name, threads)] = median_run(rs, "rps")
                continue
            m = median_run(rs, "ratio")
            m["ratios"] = sorted(x["ratio"] for x in rs)
            results["%s@%d" % (name, threads)] = m

    for threads in sorted({args.threads, 1}, reverse=True):
        (proj / "schema.yaml").write_text(open_rules(BLOG_SCHEMA))
        srv = Alyxd(args.alyxd, proj, threads, args.loop)
        try:
            run_rounds(srv, threads)
        finally:
            srv.stop()
        # The same database under the blog's own rules, signed in.
        (proj / "schema.yaml").write_text(BLOG_SCHEMA)
        srv = Alyxd(args.alyxd, proj, threads, args.loop)
        try:
            env["BENCH_TOKEN"], sub = user_token(srv.port)
            (work / "tokens.txt").write_text(
                "\n".join(many_tokens(sub, 4096)) + "\n")
            run(srv, threads, auth_routes)
        finally:
            srv.stop()

    n = args.threads
    targets = {"get": 0.60, "list": 0.35, "create": 0.20}
    lines = ["| route | threads | req/s | p50 µs | p99 µs | server CPU "
             "µs/req | ratio to hello (median of %d rounds) | ratios of "
             "the rounds | target |" % args.rounds,
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for threads in sorted({n, 1}, reverse=True):
        for name, _, _ in routes:
            r = results["%s@%d" % (name, threads)]
            ratio = r.get("ratio", 1.0)
            tgt = targets.get(name)
            lines.append("| %s | %d | %.0f | %.0f | %.0f | %.1f | %.2f | %s "
                         "| %s |" % (
                             name, threads, r["rps"], r["p50_us"],
                             r["p99_us"], r["cpu_us_per_req"], ratio,
                             " ".join("%.2f" % x for x in r.get("ratios", [])),
                             ("≥ %.2f %s" % (tgt, "met" if ratio >= tgt
                                             else "MISSED")) if tgt else ""))
    if n != 1:
        lines.append("")
        lines.append("| route | %d threads / 1 thread (req/s) |" % n)
        lines.append("|---|---:|")
        for name, _, _ in routes:
            lines.append("| %s | %.2f |" % (
                name, results["%s@%d" % (name, n)]["rps"] /
                results["%s@1" % name]["rps"]))
    lines.append("")
    lines.append("| route (Bearer token, blog rules) | threads | req/s | p50 µs "
                 "| p99 µs | server CPU µs/req | ratio to anonymous, open "
                 "rules (req/s) | CPU µs/req added | target |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for threads in sorted({n, 1}, reverse=True):
        for name in ("get", "list", "get_auth_nocache"):
            key = name if name.endswith("nocache") else name + "_auth"
            r = results["%s@%d" % (key, threads)]
            b = results["%s@%d" % (name.split("_")[0], threads)]
            ratio = r["rps"] / b["rps"]
            lines.append("| %s | %d | %.0f | %.0f | %.0f | %.1f | %.2f | "
                         "%+.1f | ≥ 0.80 %s |" % (
                             name, threads, r["rps"], r["p50_us"],
                             r["p99_us"], r["cpu_us_per_req"], ratio,
                             r["cpu_us_per_req"] - b["cpu_us_per_req"],
                             "met" if ratio >= 0.8 else "MISSED"))
    bad = sum(r["non2xx"] for rs in runs.values() for r in rs)
    lines.append("")
    lines.append("wrk -t%d -c%d, %d s per run after %d s warm-up, %d posts, "
                 "loop %s, request logs off (--quiet); non-2xx responses: %d"
                 % (args.wrk_threads, args.connections, args.duration,
                    args.warmup, args.posts, args.loop, bad))
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
