"""The HTTP API's contract, docs/openapi.yaml, held against the answers of `hoversync serve`.

harness.http_request calls check() for every answer of a service the tests started: the
request's method and path are matched to the document's path templates (concrete paths before
templated ones, as the service routes), the status must be one the operation lists (or one of
the document's x-general-responses, which any route may give), the content type one it names,
and a JSON body must match its schema; so must the `data` of each event of a Server-Sent
Events stream. A mismatch raises ContractError, an AssertionError: the test fails.

Schemas are JSON Schema 2020-12 (OpenAPI 3.1), checked by Debian's python3-jsonschema; the
document is read with python3-yaml."""
import functools
import json
import os
import re

import jsonschema
import yaml

SOURCE_ROOT = os.environ.get("SOURCE_ROOT",
                             os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOCUMENT = os.path.join(SOURCE_ROOT, "docs", "openapi.yaml")

# Ports of the services the tests started (harness.Service): their answers are checked.
SERVICE_PORTS = set()


class ContractError(AssertionError):
    pass


@functools.lru_cache(maxsize=None)
def document():
    with open(DOCUMENT) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def _templates():
    """[(path template, compiled pattern)], concrete paths first."""
    out = []
    for tmpl in document()["paths"]:
        parts = re.split(r"(\{[^}/]+\})", tmpl)
        rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        out.append((tmpl.count("{"), tmpl, re.compile("^" + rx + "$")))
    out.sort(key=lambda t: t[0])
    return [(tmpl, rx) for _, tmpl, rx in out]


def operation(method, path):
    """(path template, operation or None) for a request; (None, None) when no path matches."""
    path = path.split("?", 1)[0]
    m = "get" if method.upper() == "HEAD" else method.lower()
    for tmpl, rx in _templates():
        if rx.match(path):
            return tmpl, document()["paths"][tmpl].get(m)
    return None, None


def resolve(node):
    """Follows a local $ref ("#/components/...") to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = document()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@functools.lru_cache(maxsize=None)
def _validator(schema_json):
    schema = json.loads(schema_json)
    resolver = jsonschema.RefResolver("", document())
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def validate(schema, value, where):
    """Raises ContractError when value does not match schema (a JSON Schema of the document)."""
    v = _validator(json.dumps(schema, sort_keys=True))
    err = jsonschema.exceptions.best_match(v.iter_errors(value))
    if err is not None:
        at = "/".join(str(p) for p in err.absolute_path) or "(the document)"
        raise ContractError("%s: the body does not match the document at %s: %s\nbody: %s"
                            % (where, at, err.message, json.dumps(value)[:2000]))


def _media(content, ctype):
    """The media type entry of content that ctype falls under: exact, type/*, then */*."""
    if ctype in content:
        return content[ctype]
    major = ctype.split("/", 1)[0] + "/*"
    if major in content:
        return content[major]
    return content.get("*/*")


def sse_events(text):
    """[(event name, data)] of a Server-Sent Events stream; comments and retry: are skipped."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            out.append((name, "\n".join(data)))
    return out


def _check_body(where, ctype, media, body):
    if ctype == "application/json":
        try:
            value = json.loads(body)
        except ValueError as e:
            raise ContractError("%s: the body is not JSON (%s): %r" % (where, e, body[:200]))
        validate(media.get("schema", {}), value, where)
    elif ctype == "text/event-stream":
        events = media.get("x-sse-events", {})
        for name, data in sse_events(body.decode("utf-8", "replace")):
            if name not in events:
                raise ContractError("%s: event %r is not one of %s" % (where, name, sorted(events)))
            try:
                value = json.loads(data)
            except ValueError as e:
                raise ContractError("%s: event %s: data is not JSON (%s)" % (where, name, e))
            validate(events[name], value, "%s, event %s" % (where, name))


def check(method, path, status, headers, body):
    """Raises ContractError unless the answer (status, headers with .get(), body bytes) to
    method path is one the document describes."""
    where = "%s %s -> %d" % (method, path, status)
    if method.upper() == "OPTIONS" and status == 204:
        return  # a CORS preflight, which any path gets
    tmpl, op = operation(method, path)
    resp = (op or {}).get("responses", {}).get(str(status))
    if resp is None:
        resp = document().get("x-general-responses", {}).get(str(status))
    if resp is None:
        if op is None:
            raise ContractError("%s: the document has no operation %s %s" % (
                where, method, path.split("?", 1)[0]))
        raise ContractError("%s: status %d is not documented for %s %s" % (
            where, status, method, tmpl))
    content = resolve(resp).get("content")
    if method.upper() == "HEAD" or not body:
        return
    if not content:
        raise ContractError("%s: a body where the document has none: %r" % (where, body[:200]))
    ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    media = _media(content, ctype)
    if media is None:
        raise ContractError("%s: content type %r is not one of %s" % (where, ctype, sorted(content)))
    if ctype not in content and "*/*" in content:
        return  # bytes of any type (a stored file: a JSON one is not an answer of the API)
    _check_body(where, ctype, media, body)
