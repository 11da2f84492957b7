"""alyx_functions - the SDK of Alyx functions for Python.

    from alyx_functions import define_function

    @define_function(input={"title": {"type": "string", "required": True}})
    def handler(input, ctx):          # or: async def handler(input, ctx)
        ctx.log.info("hi", {"title": input["title"]})
        return {"ok": True}

The executor (runtimes/python/executor.py) puts this package on sys.path,
so functions need no install.
"""

__all__ = ["define_function", "FunctionError", "validate_input",
           "AlyxFunction", "DbError", "Db"]

_TYPES = {"string", "number", "int", "integer", "boolean", "array",
          "object", "any"}


class FunctionError(Exception):
    """A failure with a protocol error code:
    raise FunctionError("NOT_FOUND", "no such post", {"id": pid})"""

    def __init__(self, code, message, details=None):
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details if details is not None else {}


class AlyxFunction:
    """What define_function returns: the handler with its schemas."""

    def __init__(self, handler, input=None, output=None):
        self.handler = handler
        self.input = input
        self.output = output

    def __call__(self, input, ctx):
        return self.handler(input, ctx)


def _check_spec(path, spec):
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise TypeError("define_function: %s must be a dict" % path)
    if spec.get("type") not in _TYPES:
        raise TypeError("define_function: %s.type must be one of %s"
                        % (path, ", ".join(sorted(_TYPES))))
    if "items" in spec:
        _check_spec(path + ".items", spec["items"])
    for k, v in (spec.get("properties") or {}).items():
        _check_spec("%s.properties.%s" % (path, k), v)


def define_function(input=None, output=None):
    """Decorator declaring a function's input (validated before the
    handler runs) and output schemas."""
    for key, schema in (("input", input), ("output", output)):
        if schema is None:
            continue
        if not isinstance(schema, dict):
            raise TypeError("define_function: %s must be a dict" % key)
        for k, v in schema.items():
            _check_spec("%s.%s" % (key, k), v)

    def wrap(handler):
        if not callable(handler):
            raise TypeError("define_function: decorate a function")
        return AlyxFunction(handler, input, output)
    return wrap


def _type_ok(t, v):
    if t == "string":
        return isinstance(v, str)
    if t == "number":
        return (isinstance(v, (int, float)) and not isinstance(v, bool)
                and v == v and v not in (float("inf"), float("-inf")))
    if t in ("int", "integer"):
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    if t == "boolean":
        return isinstance(v, bool)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return True


def _check_value(path, spec, v, errs):
    if isinstance(spec, str):
        spec = {"type": spec}
    t = spec.get("type")
    if not _type_ok(t, v):
        errs.append({"field": path, "code": "type", "message":
                     "%s must be %s" % (path, "an int" if t == "int"
                                        else "a " + str(t))})
        return
    n = len(v) if isinstance(v, (str, list)) else None
    unit = "characters" if isinstance(v, str) else "items"
    if n is not None and "minLength" in spec and n < spec["minLength"]:
        errs.append({"field": path, "code": "min_length", "message":
                     "%s must have at least %s %s"
                     % (path, spec["minLength"], unit)})
    if n is not None and "maxLength" in spec and n > spec["maxLength"]:
        errs.append({"field": path, "code": "max_length", "message":
                     "%s must have at most %s %s"
                     % (path, spec["maxLength"], unit)})
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if num and "min" in spec and v < spec["min"]:
        errs.append({"field": path, "code": "min", "message":
                     "%s must be at least %s" % (path, spec["min"])})
    if num and "max" in spec and v > spec["max"]:
        errs.append({"field": path, "code": "max", "message":
                     "%s must be at most %s" % (path, spec["max"])})
    if "enum" in spec and v not in spec["enum"]:
        errs.append({"field": path, "code": "enum", "message":
                     "%s must be one of %s"
                     % (path, ", ".join(map(str, spec["enum"])))})
    if isinstance(v, list) and "items" in spec:
        for i, x in enumerate(v):
            _check_value("%s[%d]" % (path, i), spec["items"], x, errs)
    if t == "object" and "properties" in spec:
        _check_object(path + ".", spec["properties"], v, errs)


def _check_object(prefix, schema, obj, errs):
    for k, spec in schema.items():
        if isinstance(spec, str):
            spec = {"type": spec}
        v = obj.get(k)
        if v is None:
            if spec.get("required") is True and spec.get("optional") \
                    is not True:
                errs.append({"field": prefix + k, "code": "required",
                             "message": "%s is required" % (prefix + k)})
            continue
        _check_value(prefix + k, spec, v, errs)


def validate_input(schema, input):
    """The failing fields of `input` as [{field, code, message}]."""
    errs = []
    if not schema:
        return errs
    if not isinstance(input, dict):
        return [{"field": "", "code": "type",
                 "message": "input must be a JSON object"}]
    _check_object("", schema, input, errs)
    return errs


# ---- ctx.db: the internal database API -----------------------------------

_QUERY = "/internal/v1/db/query"
_EXEC = "/internal/v1/db/exec"
_TX = "/internal/v1/db/tx"


class DbError(Exception):
    """A failed database call: code (NOT_FOUND, VALIDATION_ERROR,
    CONFLICT, ...), message and details as the server reported them.
    Raised out of a handler it keeps its code."""

    def __init__(self, e):
        e = e if isinstance(e, dict) else {}
        self.message = str(e.get("message") or "database call failed")
        super().__init__(self.message)
        self.code = e.get("code") if isinstance(e.get("code"), str) \
            else "INTERNAL_ERROR"
        self.details = e.get("details") if isinstance(e.get("details"),
                                                      dict) else {}


class Collection:
    """ctx.db.posts: create/get/update/delete/query on one collection."""

    def __init__(self, db, name):
        self._db = db
        self.name = name

    def create(self, data):
        return self._db._call(_EXEC, {"op": "create",
                                      "collection": self.name,
                                      "data": data})

    def get(self, id, expand=None, fields=None):
        body = {"collection": self.name, "id": str(id)}
        if expand is not None:
            body["expand"] = expand
        if fields is not None:
            body["fields"] = fields
        try:
            return self._db._call(_QUERY, body)
        except DbError as e:
            if e.code == "NOT_FOUND" and "id" in e.details:
                return None
            raise

    def update(self, id, data):
        return self._db._call(_EXEC, {"op": "update",
                                      "collection": self.name,
                                      "id": str(id), "data": data})

    def delete(self, id):
        self._db._call(_EXEC, {"op": "delete", "collection": self.name,
                               "id": str(id)})

    def list(self, query=None):
        return self._db._call(_QUERY, {"collection": self.name,
                                       "query": query or {}})

    def query(self, query=None):
        return self.list(query)["docs"]


class Db:
    """ctx.db: collections as attributes (ctx.db.posts) or items
    (ctx.db["posts"]), raw SQL, SQL expressions and transactions."""

    def __init__(self, call, tx=None):
        self._transport = call
        self._tx = tx

    def _call(self, path, body):
        if self._tx is not None:
            body = dict(body, tx=self._tx)
        return self._transport(path, body)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return Collection(self, name)

    def __getitem__(self, name):
        return Collection(self, name)

    def collection(self, name):
        return Collection(self, name)

    def raw(self, sql, params=None):
        """Runs one SQL statement: {"rows", "changes",
        "last_insert_rowid"}."""
        return self._call(_EXEC, {"sql": str(sql),
                                  "params": list(params or [])})

    @staticmethod
    def expr(sql):
        """An SQL expression over the document's row, as an update
        value: ctx.db.posts.update(id, {"views": ctx.db.expr("views + 1")})
        """
        return {"$raw": str(sql)}

    def transaction(self, fn=None):
        """with ctx.db.transaction() as tx: ...   or
        ctx.db.transaction(lambda tx: ...): commits at the end, rolls back
        on an exception."""
        t = _Tx(self)
        if fn is None:
            return t
        with t as tx:
            return fn(tx)


class _Tx:
    def __init__(self, db):
        self._db = db
        self._id = None

    def __enter__(self):
        if self._db._tx is not None:
            return self._db         # already inside: flat
        self._id = self._db._transport(_TX, {"op": "begin"})["tx"]
        return Db(self._db._transport, self._id)

    def __exit__(self, et, ev, tb):
        if self._id is None:
            return False
        if et is None:
            self._db._transport(_TX, {"op": "commit", "tx": self._id})
        else:
            try:
                self._db._transport(_TX, {"op": "rollback",
                                          "tx": self._id})
            except DbError:
                pass
        return False
