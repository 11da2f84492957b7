"""executor.py - the warm Python executor of Alyx functions.

Runs many invocations, one at a time.  Reads newline-delimited JSON
requests on stdin and writes one response line each on the protocol
channel (fd ALYX_PROTO_FD when set, else the original stdout), exactly as
runtimes/node/executor.mjs (docs/functions.md, "Protocol").  print() and
anything else written to sys.stdout by a function becomes log entries;
fd 1 itself is pointed at stderr so the protocol channel stays clean.
"""
import importlib.util
import io
import json
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
FUNCTIONS_DIR = os.environ.get("ALYX_FUNCTIONS_DIR", "")
if FUNCTIONS_DIR:
    # functions import their own helpers: `from _shared import helpers`
    sys.path.insert(1, FUNCTIONS_DIR)

from alyx_functions import (AlyxFunction, Db, DbError,  # noqa: E402
                            validate_input)

MAX_OUTPUT = int(os.environ.get("ALYX_MAX_OUTPUT") or (1 << 20))
MAX_LOGS = 100
MAX_LOG_CHARS = 4096

# ---- the protocol channel ------------------------------------------------

if os.environ.get("ALYX_PROTO_SOCKET"):
    # In a container (the container runner): requests and responses both
    # go over the unix socket libalyx listens on.
    import socket
    _sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _sock.connect(os.environ["ALYX_PROTO_SOCKET"])
    _proto = os.fdopen(os.dup(_sock.fileno()), "wb", buffering=0)
    _stdin = os.fdopen(_sock.detach(), "rb")
elif os.environ.get("ALYX_PROTO_FD"):
    _proto = os.fdopen(int(os.environ["ALYX_PROTO_FD"]), "wb", buffering=0)
    _stdin = sys.stdin.buffer
else:
    _proto = os.fdopen(os.dup(1), "wb", buffering=0)
    _stdin = sys.stdin.buffer
os.dup2(2, 1)       # stray writes to fd 1 go to stderr


def _write(line):
    data = line.encode("utf-8") + b"\n"
    view = memoryview(data)
    while view:
        n = _proto.write(view)
        view = view[n:]


# ---- logs -----------------------------------------------------------------

class _Invocation:
    def __init__(self):
        self.logs = []
        self.dropped = 0


_current = None


def _add_log(level, message, data=None):
    if _current is None:
        sys.__stderr__.write("[%s] %s\n" % (level, message))
        return
    if len(_current.logs) >= MAX_LOGS:
        _current.dropped += 1
        return
    msg = str(message)
    if len(msg) > MAX_LOG_CHARS:
        msg = msg[:MAX_LOG_CHARS] + "\u2026"
    e = {"level": level, "message": msg}
    if data is not None:
        try:
            s = json.dumps(data)
            e["data"] = json.loads(s) if len(s) <= MAX_LOG_CHARS \
                else {"truncated": True}
        except (TypeError, ValueError):
            e["data"] = {"unserializable": True}
    _current.logs.append(e)


class _Log:
    def debug(self, message, data=None):
        _add_log("debug", message, data)

    def info(self, message, data=None):
        _add_log("info", message, data)

    def warn(self, message, data=None):
        _add_log("warn", message, data)

    warning = warn

    def error(self, message, data=None):
        _add_log("error", message, data)


class _Capture(io.TextIOBase):
    """sys.stdout/sys.stderr during an invocation: lines become logs."""

    def __init__(self, level):
        self.level = level
        self.pending = ""

    def writable(self):
        return True

    def write(self, s):
        self.pending += s
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            _add_log(self.level, line)
        return len(s)

    def flush(self):
        if self.pending:
            _add_log(self.level, self.pending)
            self.pending = ""


class _LogHandler(logging.Handler):
    def emit(self, record):
        level = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn"}.get(
            record.levelname, "error")
        _add_log(level, self.format(record))


logging.getLogger().addHandler(_LogHandler())
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("asyncio").setLevel(logging.WARNING)


# ---- ctx.db: the internal API over the pipe (or HTTP) ---------------------

_REPLY_PREFIX = b'{"internal_reply":'
_db_seq = 0


def _pipe_call(token):
    def call(path, body):
        global _db_seq
        _db_seq += 1
        rid = _db_seq
        _write(json.dumps({"internal": path, "id": rid, "token": token,
                           "body": body}, separators=(",", ":"),
                          allow_nan=False))
        while True:
            line = _stdin.readline()
            if not line:
                raise DbError({"code": "UNAVAILABLE",
                               "message": "the host closed the pipe"})
            if not line.startswith(_REPLY_PREFIX):
                continue
            r = json.loads(line)
            if r.get("internal_reply") != rid:
                continue
            if r.get("ok"):
                return r.get("body")
            raise DbError(r.get("error"))
    return call


def _http_call(url, token):
    def call(path, body):
        import urllib.error
        import urllib.request
        req = urllib.request.Request(
            url + path, data=json.dumps(body).encode("utf-8"),
            method="POST", headers={"Content-Type": "application/json",
                                    "Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req) as res:
                return json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read()).get("error")
            except ValueError:
                err = None
            raise DbError(err or {"code": "INTERNAL_ERROR",
                                  "message": "HTTP %d" % e.code})
    return call


def _db_of(c):
    token = c.get("internal_token") or ""
    if c.get("db_transport") == "http" and c.get("alyx_url"):
        return Db(_http_call(c["alyx_url"], token))
    return Db(_pipe_call(token))


class Context:
    """What a handler gets as ctx: auth, env, db, log."""

    def __init__(self, req):
        c = req.get("context") or {}
        self.auth = c.get("auth")
        self.env = dict(c.get("env") or {})
        self.db = _db_of(c)
        self.log = _Log()
        self.request_id = req.get("request_id")
        self.function = req.get("function")


# ---- modules (cached; reloaded when the file changes) -------------------

class _Fail(Exception):
    def __init__(self, code, message, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


_modules = {}


def _load(name, path):
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size)
    hit = _modules.get(path)
    if hit and hit[0] == key:
        return hit[1]
    modname = "alyx_fn_%s_%d" % (name, st.st_mtime_ns)
    try:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    except BaseException as e:   # SyntaxError, ImportError, SystemExit...
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _Fail("LOAD_ERROR", "cannot load %s: %s: %s"
                    % (name, type(e).__name__, e))
    fn = None
    for v in vars(mod).values():
        if isinstance(v, AlyxFunction):
            fn = v
            break
    if fn is None:
        raise _Fail("INVALID_FUNCTION", "%s must define a handler decorated "
                    "with @define_function(...)" % os.path.basename(path))
    _modules[path] = (key, fn)
    return fn


def _error_of(e):
    code = getattr(e, "code", None)
    if not (isinstance(code, str) and code[:1].isupper()
            and code.replace("_", "").isalnum() and code.upper() == code):
        code = "FUNCTION_ERROR"
    details = getattr(e, "details", None)
    if not isinstance(details, dict):
        details = {}
    try:
        json.dumps(details)
    except (TypeError, ValueError):
        details = {}
    msg = getattr(e, "message", None)
    if not isinstance(msg, str):
        msg = str(e) or type(e).__name__
    return {"code": code, "message": msg, "details": details}


def _invoke(req):
    global _current
    t0 = time.perf_counter()
    _current = _Invocation()
    out_save, err_save = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Capture("info"), _Capture("error")
    res = {"request_id": req.get("request_id")}
    try:
        path = req.get("file")
        if not isinstance(path, str):
            raise _Fail("BAD_REQUEST", "request has no file")
        fn = _load(str(req.get("function")), path)
        inp = req.get("input")
        if inp is None:
            inp = {}
        fields = validate_input(fn.input, inp)
        if fields:
            raise _Fail("VALIDATION_ERROR", "invalid input: " + "; ".join(
                f["message"] for f in fields), {"fields": fields})
        out = fn.handler(inp, Context(req))
        if hasattr(out, "__await__"):
            import asyncio      # only when needed: ~30 ms of start-up
            out = asyncio.run(_await(out))
        res["success"] = True
        res["output"] = out
    except MemoryError:
        res["success"] = False
        res["error"] = {"code": "OUT_OF_MEMORY", "message":
                        "the function ran out of memory", "details": {}}
    except Exception as e:
        res["success"] = False
        res["error"] = _error_of(e)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out_save, err_save
    if _current.dropped:
        _current.logs.append({"level": "warn", "message":
                              "%d more log entries dropped" % _current.dropped})
    res["logs"] = _current.logs
    _current = None
    res["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    try:
        line = json.dumps(res, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":"))
    except (TypeError, ValueError) as e:
        res.pop("output", None)
        res["success"] = False
        res["error"] = {"code": "BAD_OUTPUT", "message":
                        "output is not JSON: %s" % e, "details": {}}
        line = json.dumps(res, ensure_ascii=False)
    if len(line) > MAX_OUTPUT:
        res.pop("output", None)
        res["success"] = False
        res["error"] = {"code": "OUTPUT_TOO_LARGE", "message":
                        "response is %d bytes, more than the %d allowed"
                        % (len(line), MAX_OUTPUT),
                        "details": {"limit": MAX_OUTPUT}}
        res["logs"] = res["logs"][:10]
        line = json.dumps(res, ensure_ascii=False)
    _write(line)


async def _await(aw):
    return await aw


def main():
    while True:
        line = _stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            _write(json.dumps({"request_id": None, "success": False,
                               "error": {"code": "BAD_REQUEST", "message":
                                         "request is not JSON: %s" % e,
                                         "details": {}},
                               "logs": [], "duration_ms": 0}))
            continue
        _invoke(req)


if __name__ == "__main__":
    sys.exit(main())
