"""The three patch formats kubectl sends: JSON merge patch (RFC 7386), JSON
patch (RFC 6902) and a pragmatic strategic merge patch.

Strategic merge patch here: maps merge recursively (null deletes a key);
lists of maps whose field has a merge key in MERGE_KEYS merge item by item on
that key (containers, env, volumes by name; container ports by containerPort,
service ports by port, volumeMounts by mountPath, conditions by type); every
other list is replaced whole. Directives: `$patch: replace|delete|merge` on
maps and list items, `$retainKeys`, `$setElementOrder/<field>` (reorders a
merged list), `$deleteFromPrimitiveList/<field>`; metadata.finalizers merges
as a set. All functions return new objects and never modify their input.
"""

import copy
import json

from store import ApiError

MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "hostAliases": "ip", "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
}


def _patch_error(message):
    return ApiError(422, message, "Invalid")


def _merge_key(field, items):
    if field == "ports":
        dicts = [i for i in items if isinstance(i, dict) and "$patch" not in i]
        if dicts and all("containerPort" in i for i in dicts):
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


# ----------------------------------------------------------------------------
# JSON merge patch


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ----------------------------------------------------------------------------
# JSON patch


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise _patch_error(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts, path):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise _patch_error(f"jsonpatch: doc is missing path: {path!r}")
    return cur


def _get(doc, path):
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _patch_error(f"jsonpatch: doc is missing key: {path!r}")


def _remove(doc, path):
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _patch_error(f"jsonpatch remove operation does not apply: doc is missing path: {path!r}")


def _add(doc, path, value, replace=False):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _patch_error(f"jsonpatch replace operation does not apply: doc is missing key: {path!r}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _patch_error(f"jsonpatch: invalid index in path {path!r}")
    else:
        raise _patch_error(f"jsonpatch: doc is missing path: {path!r}")
    return doc


def json_patch(target, ops):
    if not isinstance(ops, list):
        raise ApiError(400, "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, path = op.get("op"), op.get("path")
        if path is None:
            raise _patch_error(f"jsonpatch: operation {kind!r} has no path")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise _patch_error(f"testing value {path} failed")
        else:
            raise _patch_error(f"Unexpected kind: {kind}")
    return doc


# ----------------------------------------------------------------------------
# Strategic merge patch

_DELETE = object()


def strategic_merge(original, patch, field=""):
    """Apply a strategic merge patch map to an original map."""
    result = _smp_map(original if isinstance(original, dict) else {}, patch)
    return {} if result is _DELETE else result


def _smp_map(original, patch):
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(original)
    orders = {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(out.get(name), list):
                out[name] = [x for x in out[name] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            merged = _smp_map(out[k], v)
            if merged is _DELETE:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, dict):
            merged = _smp_map({}, v)
            if merged is not _DELETE:
                out[k] = merged
        elif isinstance(v, list):
            out[k] = _smp_list(k, out.get(k), v)
        else:
            out[k] = copy.deepcopy(v)
    for name, order in orders.items():
        if isinstance(out.get(name), list):
            out[name] = _reorder(name, out[name], order)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _smp_list(field, original, patch):
    original = original if isinstance(original, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field == "finalizers":
        return original + [x for x in patch if x not in original]
    key = _merge_key(field, patch + original)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    out = copy.deepcopy(original)
    for item in patch:
        idx = next((n for n, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            merged = _smp_map({}, item)
            if merged is not _DELETE:
                out.append(merged)
        else:
            merged = _smp_map(out[idx], item)
            if merged is _DELETE:
                out.pop(idx)
            else:
                out[idx] = merged
    return out


def _reorder(field, items, order):
    key = _merge_key(field, items)

    def ident(x):
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(o) if isinstance(o, dict) else o for o in order]
    ranked = [i for w in wanted for i in items if ident(i) == w]
    return ranked + [i for i in items if ident(i) not in wanted]


# ----------------------------------------------------------------------------


PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


def parse_json(body):
    try:
        return json.loads(body or b"null")
    except ValueError as e:
        raise ApiError(400, f"the body of the request was in an unknown format: {e}") from None


def apply_patch(kind, target, patch):
    """kind: merge | json | strategic. Returns the patched object."""
    if kind == "json":
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "the patch must be a JSON object")
    if kind == "merge":
        return merge_patch(target, patch)
    return strategic_merge(target, patch)
