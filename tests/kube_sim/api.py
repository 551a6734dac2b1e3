"""Resource requests (everything but discovery, watch and streams): route
parsing, get/list/create/update/patch/apply/delete, the scale, status and
log subresources, and dry-run. HTTP-free: returns (code, object).
"""

import json
import urllib.parse
from dataclasses import dataclass

import patching
import protobuf
import store as st
import tables
from resources import resource_for


@dataclass
class Route:
    res: object
    ns: str = None
    name: str = None
    sub: str = None


def parse_route(path):
    """/api/v1/... or /apis/G/V/... -> Route, or None when it names no resource."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and resource_for(group, version, rest[2]):
        ns, rest = rest[1], rest[2:]
    res = resource_for(group, version, rest[0])
    if res is None or len(rest) > 3:
        return None
    route = Route(res, ns, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)
    if route.sub and route.sub not in res.subresources:
        return None
    return route


def wants_table(accept):
    return "as=Table" in (accept or "")


def dry_run(query, body=None):
    values = query.get("dryRun", [])
    if isinstance(body, dict):  # DeleteOptions
        values = values + list(body.get("dryRun") or [])
    for v in values:
        if v != "All":
            raise st.ApiError(400, f'unsupported dry run value: "{v}"')
    return bool(values)


def parse_body(body, ctype):
    """JSON (kubectl sends JSON, even for apply-patch+yaml), or protobuf for a few kinds."""
    if not body:
        raise st.ApiError(400, "the request body is empty")
    if "protobuf" not in ctype:
        try:
            return json.loads(body)
        except ValueError:
            pass
    if "yaml" in ctype:
        raise st.ApiError(415, "the simulator accepts JSON bodies only (kubectl sends JSON, also for "
                          "application/apply-patch+yaml); this body is not JSON")
    if "protobuf" in ctype:
        return protobuf.decode(body)
    raise st.ApiError(400, "the body of the request was in an unknown format - accepted media types include: "
                      "application/json")


def scale_of(res, obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    meta = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0), "selector": st.selector_string(selector)}}


class Api:
    def __init__(self, store, pod_log=None):
        self.store = store
        self.pod_log = pod_log  # (ns, name, container) -> bytes of a run-local pod's output, or None

    def handle(self, method, route, query, body, ctype, accept):
        res = route.res
        if res.namespaced and route.ns is None and route.name is not None:
            raise st.ApiError(404, "the server could not find the requested resource")
        ns = route.ns if res.namespaced else None
        if route.sub == "scale":
            return self.scale(method, route, query, body, ctype)
        if route.sub == "log":
            pod = self.store.get(res, ns, route.name)
            text = self.pod_log(ns, route.name, query.get("container", [""])[0]) if self.pod_log else None
            if text is not None:
                return 200, text
            return 200, ((pod["metadata"].get("annotations") or {}).get("sim.runbook/logs", "")).encode()
        if route.name is None:
            if method == "GET":
                return self.list(route, query, accept)
            if method == "POST":
                return self.create(route, query, parse_body(body, ctype))
            if method == "DELETE":
                return self.delete_collection(route, query)
            raise st.ApiError(405, f"method {method} is not allowed on a collection")
        if method == "GET":
            obj = self.store.get(res, ns, route.name)
            if wants_table(accept) and not route.sub:
                return 200, tables.to_table(res.kind, [obj], obj["metadata"]["resourceVersion"],
                                            query.get("includeObject", ["Metadata"])[0])
            return 200, obj
        if method == "PUT":
            new = parse_body(body, ctype)
            self._check_kind(res, new)
            return 200, self.store.update(res, ns, route.name, new, dry_run(query), route.sub)
        if method == "PATCH":
            return self.patch(route, query, body, ctype)
        if method == "DELETE":
            opts = json.loads(body) if body and body.strip() else {}
            return self.delete(route, query, opts)
        raise st.ApiError(405, f"method {method} is not allowed")

    def _check_kind(self, res, obj):
        if not isinstance(obj, dict):
            raise st.ApiError(400, "the object must be a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind and kind != res.kind) or (api_version and api_version != res.api_version):
            raise st.ApiError(400, f"the API version in the data ({api_version}) does not match the expected "
                              f"API version ({res.api_version})" if api_version != res.api_version else
                              f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")

    def list(self, route, query, accept):
        res = route.res
        ns = route.ns if res.namespaced else None
        items, rv = self.store.list(res, ns, query.get("labelSelector", [""])[0],
                                    query.get("fieldSelector", [""])[0])
        if wants_table(accept):
            return 200, tables.to_table(res.kind, items, rv, query.get("includeObject", ["Metadata"])[0])
        return 200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                     "metadata": {"resourceVersion": rv}, "items": items}

    def create(self, route, query, obj):
        res = route.res
        self._check_kind(res, obj)
        ns = route.ns if res.namespaced else None
        if res.namespaced and ns is None:
            raise st.ApiError(400, "a namespaced object must be created in a namespace")
        return 201, self.store.create(res, ns, obj, dry_run(query))

    def patch(self, route, query, body, ctype):
        res = route.res
        ns = route.ns if res.namespaced else None
        kind = patching.PATCH_TYPES.get(ctype)
        if kind is None:
            raise st.ApiError(415, f'the body of the request was in an unknown format - accepted media types '
                              f'include: {", ".join(patching.PATCH_TYPES)}')
        dry = dry_run(query)
        if kind == "apply":
            applied = parse_body(body, ctype)
            self._check_kind(res, applied)
            current = self.store.find(res, ns, route.name)
            if current is None:
                applied.setdefault("metadata", {})["name"] = route.name
                return 201, self.store.create(res, ns, applied, dry)
            # a pragmatic server-side apply: the applied configuration merged in strategically
            applied.get("metadata", {}).pop("resourceVersion", None)
            new = patching.strategic_merge(current, applied)
            return 200, self.store.update(res, ns, route.name, new, dry, route.sub)
        patch = patching.parse_json(body)
        current = self.store.get(res, ns, route.name)
        new = patching.apply_patch(kind, current, patch)
        if not isinstance(new, dict):
            raise st.ApiError(422, "the patch did not produce an object", "Invalid")
        return 200, self.store.update(res, ns, route.name, new, dry, route.sub)

    def scale(self, method, route, query, body, ctype):
        res = route.res
        obj = self.store.get(res, route.ns, route.name)
        scale = scale_of(res, obj)
        if method == "GET":
            return 200, scale
        if method == "PUT":
            new = parse_body(body, ctype)
        elif method == "PATCH":
            kind = patching.PATCH_TYPES.get(ctype)
            if kind is None or kind == "apply":
                raise st.ApiError(415, f"unsupported patch type {ctype} for scale")
            new = patching.apply_patch(kind, scale, patching.parse_json(body))
        else:
            raise st.ApiError(405, f"method {method} is not allowed on scale")
        want_rv = (new.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
            raise st.conflict(res, route.name)
        replicas = (new.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise st.invalid(res, route.name, [("spec.replicas", f"Invalid value: {replicas!r}: must be greater "
                                                "than or equal to 0")])
        obj["spec"]["replicas"] = replicas
        updated = self.store.update(res, route.ns, route.name, obj, dry_run(query))
        return 200, scale_of(res, updated)

    def delete(self, route, query, opts):
        res = route.res
        ns = route.ns if res.namespaced else None
        pre = opts.get("preconditions") or {}
        if pre:
            current = self.store.get(res, ns, route.name)
            if pre.get("uid") and pre["uid"] != current["metadata"]["uid"]:
                raise st.ApiError(409, f'Precondition failed: UID in precondition: {pre["uid"]}, UID in object '
                                  f'meta: {current["metadata"]["uid"]}', "Conflict")
            if pre.get("resourceVersion") and pre["resourceVersion"] != current["metadata"]["resourceVersion"]:
                raise st.conflict(res, route.name)
        return 200, self.store.delete(res, ns, route.name, dry_run(query, opts))

    def delete_collection(self, route, query):
        res = route.res
        ns = route.ns if res.namespaced else None
        items, rv = self.store.list(res, ns, query.get("labelSelector", [""])[0],
                                    query.get("fieldSelector", [""])[0])
        dry = dry_run(query)
        deleted = [self.store.delete(res, o["metadata"].get("namespace"), o["metadata"]["name"], dry)
                   for o in items]
        return 200, {"kind": res.kind + "List", "apiVersion": res.api_version,
                     "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted}
