"""The object store: objects, resourceVersions, the event log that watches
read, label and field selectors, and the API error type.

One global resourceVersion counter; it moves only when an object really
changes (a write that leaves an object as it was returns the stored object
untouched). Every change appends one event; a watch from resourceVersion R
receives the events with rv > R. Thread safety: every public method takes
`lock`; `changed` is notified after each change.
"""

import collections
import copy
import datetime
import re
import secrets
import threading
import uuid

import defaults
from resources import BY_KEY

MAX_EVENTS = 20000


class ApiError(Exception):
    """An error answered as a `Status` object."""

    REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
               415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
               500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details = details

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def not_found(res, name):
    return ApiError(404, f'{res.group_resource} "{name}" not found',
                    details={"name": name, "group": res.group, "kind": res.plural})


def already_exists(res, name):
    return ApiError(409, f'{res.group_resource} "{name}" already exists', "AlreadyExists",
                    details={"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name):
    return ApiError(409, f'Operation cannot be fulfilled on {res.group_resource} "{name}": the object '
                    'has been modified; please apply your changes to the latest version and try again',
                    "Conflict", details={"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, causes):
    """causes: [(field, message)]"""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    kind = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(422, f'{kind} "{name}" is invalid: {text}',
                    "Invalid", details={"name": name, "group": res.group, "kind": res.kind,
                                        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                                   for f, m in causes]})


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------
# Selectors

_TERM_SPLIT = re.compile(r",(?![^()]*\))")
_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")


def parse_label_selector(text):
    """-> list of (key, op, values); op in = != in notin exists !exists."""
    reqs = []
    for term in _TERM_SPLIT.split(text or ""):
        term = term.strip()
        if not term:
            continue
        m = _SET_TERM.match(term)
        if m:
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
            continue
        m = _EQ_TERM.match(term)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append((m.group(1), op, {m.group(3)}))
            continue
        if term.startswith("!") and re.match(r"^![\w./-]+$", term):
            reqs.append((term[1:], "!exists", set()))
        elif re.match(r"^[\w./-]+$", term):
            reqs.append((term, "exists", set()))
        else:
            raise ApiError(400, f"unable to parse requirement: {term!r}")
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op == "=" and not (present and labels[key] in values):
            return False
        if op == "!=" and present and labels[key] in values:
            return False
        if op == "in" and not (present and labels[key] in values):
            return False
        if op == "notin" and present and labels[key] in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!exists" and present:
            return False
    return True


def parse_field_selector(text):
    reqs = []
    for term in (text or "").split(","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise ApiError(400, f"invalid field selector: {term!r}")
        reqs.append((m.group(1), m.group(2) == "!=", m.group(3)))
    return reqs


def fields_match(reqs, obj):
    for path, negate, value in reqs:
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        actual = "" if cur is None else str(cur)
        if (actual == value) == negate:
            return False
    return True


def selector_string(match_labels):
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels or {}).items()))


# ----------------------------------------------------------------------------
# The store


def _comparable(obj):
    """The object without the fields the server itself moves."""
    o = copy.deepcopy(obj)
    meta = o.get("metadata", {})
    for k in ("resourceVersion", "generation", "managedFields"):
        meta.pop(k, None)
    return o


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self.listeners = []  # called (under the lock) after each change
        self.reset()

    # -- whole-store operations

    def reset(self):
        with self.lock:
            self.objects = collections.defaultdict(dict)  # rkey -> {(ns, name): obj}
            self.events = collections.deque()
            self.floor = self.rv
            for ns in ("default", "kube-system", "kube-public"):
                self.create(BY_KEY["/namespaces"], None,
                            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self.changed.notify_all()

    def dump(self):
        with self.lock:
            out = {"resourceVersion": str(self.rv), "objects": {}}
            for rkey, table in sorted(self.objects.items()):
                items = [table[k] for k in sorted(table)]
                if items:
                    out["objects"][rkey] = copy.deepcopy(items)
            return out

    # -- reads

    def get(self, res, ns, name):
        with self.lock:
            obj = self.objects[res.key].get((ns, name))
            if obj is None:
                raise not_found(res, name)
            return copy.deepcopy(obj)

    def find(self, res, ns, name):
        with self.lock:
            obj = self.objects[res.key].get((ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, res, ns=None, label_selector="", field_selector=""):
        lreqs = parse_label_selector(label_selector)
        freqs = parse_field_selector(field_selector)
        with self.lock:
            items = []
            for (ons, oname), obj in sorted(self.objects[res.key].items()):
                if ns is not None and ons != ns:
                    continue
                if not labels_match(lreqs, obj["metadata"].get("labels")) or not fields_match(freqs, obj):
                    continue
                items.append(copy.deepcopy(obj))
            return items, str(self.rv)

    def events_since(self, since_rv, res, ns, lreqs, freqs):
        """(events after since_rv for res (and ns), the resourceVersion they reach), or
        (None, rv) when since_rv is older than the retained history."""
        with self.lock:
            if since_rv < self.floor:
                return None, self.rv
            out = []
            for rv, rkey, ons, etype, obj in self.events:
                if rv <= since_rv or rkey != res.key or (ns is not None and ons != ns):
                    continue
                if labels_match(lreqs, obj["metadata"].get("labels")) and fields_match(freqs, obj):
                    out.append((rv, etype, obj))
            return out, self.rv

    # -- writes

    def _check_namespace(self, res, ns):
        if res.namespaced and (None, ns) not in self.objects["/namespaces"]:
            raise ApiError(404, f'namespaces "{ns}" not found',
                           details={"name": ns, "kind": "namespaces"})

    def _record(self, res, ns, etype, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, res.key, ns, etype, copy.deepcopy(obj)))
        while len(self.events) > MAX_EVENTS:
            self.floor = self.events.popleft()[0]
        for fn in self.listeners:
            fn(res, etype, obj)
        self.changed.notify_all()

    def create(self, res, ns, obj, dry_run=False, keep_status=False):
        """keep_status: the controller creating an object with its status already set."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            name = meta.get("name")
            if not name:
                raise invalid(res, "", [("metadata.name", "Required value: name or generateName is required")])
            if meta.get("namespace") and res.namespaced and ns and meta["namespace"] != ns:
                raise ApiError(400, "the namespace of the provided object does not match the namespace "
                               "sent on the request")
            self._check_namespace(res, ns)
            key = (ns if res.namespaced else None, name)
            if key in self.objects[res.key]:
                raise already_exists(res, name)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            if res.namespaced:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            meta.pop("resourceVersion", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if res.group:  # workloads (apps, batch) track generation; core kinds do not
                meta["generation"] = 1
            if res.has_status and not keep_status:
                obj.pop("status", None)
            defaults.apply(res, obj, self)
            defaults.validate(res, obj)
            if dry_run:
                return obj
            self.objects[res.key][key] = obj
            self._record(res, key[0], "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, res, ns, name, new, dry_run=False, subresource=None):
        """Replace an object. subresource None: keeps the stored status; "status": only the status."""
        with self.lock:
            key = (ns if res.namespaced else None, name)
            old = self.objects[res.key].get(key)
            if old is None:
                raise not_found(res, name)
            new = copy.deepcopy(new)
            meta = new.setdefault("metadata", {})
            want_rv = meta.get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if meta.get("name", name) != name:
                raise ApiError(400, f'the name of the object ({meta["name"]}) does not match the name on '
                               f'the URL ({name})')
            if subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                if status is None:
                    new.pop("status", None)
                else:
                    new["status"] = status
            else:
                for k in ("uid", "creationTimestamp", "deletionTimestamp"):
                    if k in old["metadata"]:
                        meta[k] = old["metadata"][k]
                meta["name"] = name
                if res.namespaced:
                    meta["namespace"] = ns
                new["apiVersion"], new["kind"] = res.api_version, res.kind
                if res.has_status:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                defaults.apply(res, new, self)
                defaults.validate(res, new)
                defaults.validate_update(res, old, new)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if "generation" in old["metadata"]:
                new["metadata"]["generation"] = old["metadata"]["generation"]
            else:
                new["metadata"].pop("generation", None)
            if _comparable(new) == _comparable(old):
                return copy.deepcopy(old)  # a no-op: resourceVersion stays
            if "generation" in new["metadata"] and new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] += 1
            if dry_run:
                return new
            self.objects[res.key][key] = new
            self._record(res, key[0], "MODIFIED", new)
            return copy.deepcopy(new)

    def delete(self, res, ns, name, dry_run=False):
        with self.lock:
            key = (ns if res.namespaced else None, name)
            obj = self.objects[res.key].get(key)
            if obj is None:
                raise not_found(res, name)
            if dry_run:
                return copy.deepcopy(obj)
            if res.key == "/namespaces":
                self._delete_namespace_contents(name)
            del self.objects[res.key][key]
            self._record(res, key[0], "DELETED", obj)
            return copy.deepcopy(obj)

    def _delete_namespace_contents(self, ns):
        for rkey, table in list(self.objects.items()):
            for (ons, oname) in sorted(table):
                if ons == ns:
                    self.delete(BY_KEY[rkey], ns, oname)
