"""Functions over HTTP (docs/functions.md): the blog example's createPost
(Node) and create_post (Python) end to end, input validation, failures
(throw, timeout), concurrency beyond max_instances, transactions, the
admin list and logs, hot reload, and the internal API's tokens both on the
executor's pipe and over HTTP."""
import base64
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import BIN, DEFAULT_CONFIG, ROOT, SLOW, Server, make_project

SECRET = "functions-secret-0123456789abcdef"
CONFIG = DEFAULT_CONFIG + """\
auth:
  jwt:
    secret: "%s"
  rate_limit:
    register: 1000/minute
    login: 1000/minute
functions:
  node: {min_warm: 0, max_instances: 2, exec_timeout: 20s}
  python: {min_warm: 0, max_instances: 2, exec_timeout: 20s}
""" % SECRET
PW = "Correct-Horse-9"

HAVE_NODE = shutil.which("node") is not None
HAVE_PY = shutil.which("python3") is not None
need_node = pytest.mark.skipif(not HAVE_NODE, reason="node is not installed")

EXTRA = {
    # A coded error, and an uncoded one.
    "boom.js": """
import { defineFunction, FunctionError } from "@alyx/functions";
export default defineFunction({
  async handler(input, ctx) {
    if (input.plain) throw new Error("plain failure");
    throw new FunctionError("NOT_FOUND", "no such thing", {what: "x"});
  },
});
""",
    "spin.js": """
import { defineFunction } from "@alyx/functions";
export default defineFunction({ async handler() { for (;;) {} } });
""",
    "spin.yaml": "timeout: 1s\n",
    # Its own pool (memory differs), so the queue test is undisturbed.
    "sleepy.js": """
import { defineFunction } from "@alyx/functions";
export default defineFunction({
  async handler(input) {
    await new Promise((r) => setTimeout(r, input.ms));
    return {slept: input.ms};
  },
});
""",
    "sleepy.yaml": "memory: 200mb\ntimeout: 20s\n",
    # A transaction rolled back by a throw or by the function's timeout.
    "txfail.js": """
import { defineFunction, FunctionError } from "@alyx/functions";
export default defineFunction({
  async handler(input, ctx) {
    return ctx.db.transaction(async (tx) => {
      await tx.posts.create({title: "tx", content: "c", slug: input.slug,
                             author_id: ctx.auth.id});
      if (input.hang) for (;;) {}
      throw new FunctionError("ABORTED", "rolled back");
    });
  },
});
""",
    "txfail.yaml": "timeout: 2s\n",
}


def claims_of(tok):
    return json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def start(tmp, env=None, extra=EXTRA):
    proj = make_project(tmp, CONFIG)
    shutil.copytree(ROOT / "examples" / "blog" / "functions",
                    proj / "functions")
    for name, text in extra.items():
        (proj / "functions" / name).write_text(text)
    return proj, Server(proj, env=env)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    proj, s = start(tmp_path_factory.mktemp("fn"))
    s.proj = proj
    yield s
    assert s.stop() == 0


def user(srv, email):
    st, _, b = srv.json("POST", "/api/auth/register",
                        {"email": email, "password": PW})
    assert st == 201, b
    return b["access_token"]


CLI = os.environ.get("ALYX_CLI_BIN", str(
    __import__("pathlib").Path(BIN).resolve().parents[1] / "cli" / "alyx"))


def admin_token(srv, email):
    """An admin made by `alyx auth create-admin`, signed in."""
    if not os.access(CLI, os.X_OK):
        pytest.skip("the alyx CLI was not found at %s" % CLI)
    r = subprocess.run([CLI, "--dir", str(srv.proj), "auth", "create-admin",
                        email, "--password-stdin"], input=PW + "\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    st, _, b = srv.json("POST", "/api/auth/login",
                        {"email": email, "password": PW})
    assert st == 200, b
    return b["access_token"]


def invoke(srv, name, body, tok=None):
    return srv.json("POST", "/api/functions/" + name, body,
                    headers=bearer(tok) if tok else None)


def create_post(srv, name):
    tok = user(srv, "%s@example.com" % name.lower())
    st, h, b = invoke(srv, name, {"title": "Hello World!",
                                  "content": "My first post",
                                  "tags": ["a", "b"]}, tok)
    assert st == 200, b
    assert b["success"] is True and "x-request-id" in h
    out = b["output"]
    assert out["slug"].startswith("hello-world-")
    assert any(l["message"] == "Post created" and
               l["data"]["postId"] == out["id"] for l in b["logs"])
    assert b["duration_ms"] >= 0
    # The post is in the database, written by the function.
    st, _, doc = srv.json("GET", "/api/collections/posts/" + out["id"])
    assert st == 200, doc
    assert doc["author_id"] == claims_of(tok)["sub"]
    assert doc["tags"] == ["a", "b"]
    # Validation before the function runs: 422 with the failing fields.
    st, _, b = invoke(srv, name, {"title": "x" * 201}, tok)
    assert st == 422, b
    fields = {f["field"]: f["code"] for f in b["error"]["details"]["fields"]}
    assert fields == {"title": "max_length", "content": "required"}
    # No caller: the function's own UNAUTHORIZED; a bad token: 401 before.
    st, _, b = invoke(srv, name, {"title": "t", "content": "c"})
    assert st == 401 and b["error"]["code"] == "UNAUTHORIZED", b
    st, _, b = invoke(srv, name, {"title": "t", "content": "c"}, "garbage")
    assert st == 401, b
    return tok


@need_node
def test_create_post_node(srv):
    tok = create_post(srv, "createPost")
    # publishPost: a transaction with an SQL expression.
    st, _, b = invoke(srv, "createPost", {"title": "Draft",
                                          "content": "c"}, tok)
    pid = b["output"]["id"]
    st, _, b = invoke(srv, "publishPost", {"id": pid}, tok)
    assert st == 200, b
    assert b["output"] == {"id": pid, "published": True, "drafts": 1}
    st, _, doc = srv.json("GET", "/api/collections/posts/" + pid)
    assert doc["published"] is True and doc["view_count"] == 1
    st, _, b = invoke(srv, "publishPost", {"id": "nope"}, tok)
    assert st == 404 and b["error"]["code"] == "NOT_FOUND", b


@pytest.mark.skipif(not HAVE_PY, reason="python3 is not installed")
def test_create_post_python(srv):
    create_post(srv, "create_post")


@need_node
def test_errors(srv):
    st, _, b = invoke(srv, "boom", {})
    assert st == 404 and b["error"]["code"] == "NOT_FOUND", b
    assert b["error"]["details"]["details"] == {"what": "x"}
    st, _, b = invoke(srv, "boom", {"plain": True})
    assert st == 500 and b["error"]["code"] == "FUNCTION_ERROR", b
    assert "plain failure" in b["error"]["message"]
    st, _, b = invoke(srv, "spin", {})
    assert st == 504 and b["error"]["code"] == "TIMEOUT", b
    st, _, b = invoke(srv, "nope", {})
    assert st == 404, b
    st, _, b = srv.json("POST", "/api/functions/boom", "[1]",
                        headers={"Content-Type": "application/json"})
    assert st == 400 and b["error"]["code"] == "INVALID_JSON", b
    st, _, b = srv.json("GET", "/api/functions/boom")
    assert st == 405, b


@need_node
def test_transactions_roll_back(srv):
    tok = user(srv, "tx@example.com")
    st, _, b = invoke(srv, "txfail", {"slug": "tx-throw"}, tok)
    assert st == 400 and b["error"]["code"] == "ABORTED", b
    st, _, b = invoke(srv, "txfail", {"slug": "tx-hang", "hang": True}, tok)
    assert st == 504, b
    for slug in ("tx-throw", "tx-hang"):
        st, _, b = srv.json("GET", "/api/collections/posts?filter=slug:eq:"
                            + slug)
        assert st == 200 and b["docs"] == [], b
    # The writer is free again: REST writes go through.
    st, _, b = srv.json("POST", "/api/collections/users",
                        {"email": "after-tx@example.com"})
    assert st == 201, b


@need_node
def test_concurrency_beyond_max_instances(srv):
    # max_instances 2, at most 4 x 2 waiting: of 14 calls at once, some
    # are refused at once with 503, the others all finish.
    results = []
    lock = threading.Lock()

    def one():
        st, _, b = invoke(srv, "sleepy", {"ms": 600})
        with lock:
            results.append((st, b))

    ths = [threading.Thread(target=one) for _ in range(14)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    codes = sorted(st for st, _ in results)
    assert codes.count(200) >= 6, results
    assert codes.count(503) >= 1, results
    assert set(codes) <= {200, 503}, results
    assert all(b["error"]["code"] == "UNAVAILABLE"
               for st, b in results if st == 503)


@need_node
def test_admin_list_and_logs(srv):
    invoke(srv, "boom", {})
    st, h, b = srv.json("GET", "/api/admin/functions")
    assert st == 401 and h["www-authenticate"] == "Bearer", b
    st, _, b = srv.json("GET", "/api/admin/functions",
                        headers=bearer(user(srv, "plain@example.com")))
    assert st == 403, b
    adm = bearer(admin_token(srv, "boss@example.com"))
    st, h, b = srv.json("GET", "/api/admin/functions", headers=adm)
    assert st == 200, b
    fns = {f["name"]: f for f in b["functions"]}
    assert fns["createPost"]["runtime"] == "node"
    assert fns["create_post"]["runtime"] == "python"
    assert fns["createPost"]["status"] == "ready"
    assert b["pools"] and b["runner"] == "process"
    st, _, b = srv.json("GET", "/api/admin/functions/boom/logs", headers=adm)
    assert st == 200, b
    assert b["function"] == "boom" and b["entries"], b
    e = b["entries"][-1]
    assert e["success"] is False and e["error"]["code"] == "FUNCTION_ERROR"
    assert e["duration_ms"] >= 0 and e["request_id"].startswith("req_")
    st, _, b = srv.json("GET", "/api/admin/functions/nope/logs", headers=adm)
    assert st == 404, b


@need_node
def test_hot_reload(srv):
    f = srv.proj / "functions" / "hello.js"
    code = """import { defineFunction } from "@alyx/functions";
export default defineFunction({ async handler() { return {v: %d}; } });
"""
    f.write_text(code % 1)
    deadline = time.time() + 10 * SLOW
    while True:
        st, _, b = invoke(srv, "hello", {})
        if st == 200 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert st == 200 and b["output"] == {"v": 1}, b
    f.write_text(code % 22)
    os.utime(f, (time.time() + 5, time.time() + 5))
    st, _, b = invoke(srv, "hello", {})
    assert st == 200 and b["output"] == {"v": 22}, b


def test_internal_api_refuses_without_token(srv):
    for path in ("/internal/v1/db/query", "/internal/v1/db/exec",
                 "/internal/v1/db/tx"):
        st, h, b = srv.json("POST", path, {"sql": "SELECT 1"})
        assert st == 401 and h["www-authenticate"] == "Bearer", b
        st, _, b = srv.json("POST", path, {"sql": "SELECT 1"},
                            headers=bearer("itk_1_" + "0" * 64))
        assert st == 401, b
        # A user's (valid) access token is not an invocation token.
        st, _, b = srv.json("POST", path, {"sql": "SELECT 1"},
                            headers=bearer(user(srv, "i%d@x.io" %
                                                len(path))))
        assert st == 401, b
    # Without a token a bad body is not even looked at.
    st, _, b = srv.json("POST", "/internal/v1/db/exec", "{nope",
                        headers={"Content-Type": "application/json"})
    assert st == 401, b
    st, _, b = srv.json("GET", "/internal/v1/db/query")
    assert st == 405, b


@need_node
def test_internal_api_over_http(tmp_path):
    """Executors told to use HTTP (as containers do) reach the internal API
    through alyxd with their invocation's token, which is refused once the
    invocation ended."""
    leak = """
import { defineFunction } from "@alyx/functions";
export default defineFunction({
  async handler(input, ctx) {
    const real = globalThis.fetch;
    let auth = null;
    globalThis.fetch = (url, opts) => {
      auth = opts.headers.Authorization;
      return real(url, opts);
    };
    try {
      const n = await ctx.db.raw("SELECT 6 * 7 AS n");
      const t = await ctx.db.transaction(async (tx) => {
        await tx.users.create({email: "via-http@example.com"});
        return (await tx.users.query({filter: {email: "via-http@example.com"}})).length;
      });
      return {n: n.rows[0].n, t, auth};
    } finally {
      globalThis.fetch = real;
    }
  },
});
"""
    # Over HTTP an executor needs the network (the sandbox has none).
    extra = {"leak.js": leak, "leak.yaml": "network: true\n",
             "createPost.yaml": "network: true\n"}
    proj, s = start(tmp_path, env={"ALYX_FUNCTIONS_DB": "http"}, extra=extra)
    try:
        st, _, b = invoke(s, "leak", {})
        assert st == 200, b
        out = b["output"]
        assert out["n"] == 42 and out["t"] == 1, out
        assert out["auth"].startswith("Bearer itk_")
        st, _, b = s.json("GET", "/api/collections/users?filter=email:eq:"
                          "via-http@example.com")
        assert len(b["docs"]) == 1, b
        # The token died with its invocation.
        st, _, b = s.json("POST", "/internal/v1/db/query",
                          {"sql": "SELECT 1"},
                          headers={"Authorization": out["auth"]})
        assert st == 401, b
        # createPost through HTTP too.
        create_post(s, "createPost")
    finally:
        assert s.stop() == 0
