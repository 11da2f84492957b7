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
           "AlyxFunction"]

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
