"""The resource table of the simulator, and the documents derived from it.

Everything kubectl learns about the API before touching an object comes from
here: legacy discovery (/api, /apis, /api/v1, /apis/G/V), aggregated discovery
(apidiscovery.k8s.io/v2 APIGroupDiscoveryList) and OpenAPI v3 (a root plus one
document per group-version whose PATCH operations list `fieldValidation`, which
is all kubectl's `apply` validation check looks for).
"""

import hashlib
import json
from dataclasses import dataclass, field

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short: list = field(default_factory=list)
    # subresource name -> (group, version, kind, verbs)
    subresources: dict = field(default_factory=dict)
    categories: list = field(default_factory=list)
    # True: a write to the main resource keeps the stored status (status subresource).
    has_status: bool = True

    @property
    def key(self):
        return f"{self.group}/{self.plural}"

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self):
        return self.kind.lower()

    @property
    def group_resource(self):
        """How errors name the resource: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_STATUS = ("", "", "", ["get", "patch", "update"])
_SCALE = ("autoscaling", "v1", "Scale", ["get", "patch", "update"])

RESOURCES = [
    Resource("", "v1", "pods", "Pod", short=["po"], categories=["all"],
             subresources={"status": _STATUS, "exec": ("", "v1", "PodExecOptions", ["create", "get"]),
                           "portforward": ("", "v1", "PodPortForwardOptions", ["create", "get"]),
                           "log": ("", "v1", "Pod", ["get"])}),
    Resource("", "v1", "services", "Service", short=["svc"], categories=["all"],
             subresources={"status": _STATUS}),
    Resource("", "v1", "endpoints", "Endpoints", short=["ep"], has_status=False),
    Resource("", "v1", "events", "Event", short=["ev"], has_status=False),
    Resource("", "v1", "configmaps", "ConfigMap", short=["cm"], has_status=False),
    Resource("", "v1", "secrets", "Secret", has_status=False),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=["pvc"],
             subresources={"status": _STATUS}),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"],
             subresources={"status": _STATUS}),
    Resource("apps", "v1", "deployments", "Deployment", short=["deploy"], categories=["all"],
             subresources={"status": _STATUS, "scale": _SCALE}),
    Resource("apps", "v1", "replicasets", "ReplicaSet", short=["rs"], categories=["all"],
             subresources={"status": _STATUS, "scale": _SCALE}),
    Resource("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], categories=["all"],
             subresources={"status": _STATUS, "scale": _SCALE}),
    Resource("batch", "v1", "jobs", "Job", categories=["all"], subresources={"status": _STATUS}),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", has_status=False),
]

BY_KEY = {r.key: r for r in RESOURCES}
BY_GROUP_VERSION = {}
for _r in RESOURCES:
    BY_GROUP_VERSION.setdefault((_r.group, _r.version), {})[_r.plural] = _r
GROUPS = ["apps", "batch", "coordination.k8s.io"]  # non-core groups, in discovery order


def resource_for(group, version, plural):
    return BY_GROUP_VERSION.get((group, version), {}).get(plural)


def resource_for_kind(api_version, kind):
    group, _, version = api_version.rpartition("/")
    for r in RESOURCES:
        if r.group == group and r.version == version and r.kind == kind:
            return r
    return None


# ----------------------------------------------------------------------------
# Legacy discovery


def api_versions():
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def api_group_list():
    groups = []
    for g in GROUPS:
        gv = {"groupVersion": f"{g}/v1", "version": "v1"}
        groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group):
    if group not in GROUPS:
        return None
    gv = {"groupVersion": f"{group}/v1", "version": "v1"}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


def api_resource_list(group, version):
    table = BY_GROUP_VERSION.get((group, version))
    if table is None:
        return None
    out = []
    for r in table.values():
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": VERBS}
        if r.short:
            entry["shortNames"] = r.short
        if r.categories:
            entry["categories"] = r.categories
        out.append(entry)
        for sub, (sg, sv, skind, sverbs) in r.subresources.items():
            s = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                 "kind": skind or r.kind, "verbs": sverbs}
            if sg:
                s["group"], s["version"] = sg, sv
            out.append(s)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


# ----------------------------------------------------------------------------
# Aggregated discovery (what kubectl 1.32 asks for first)

AGGREGATED_V2 = "apidiscovery.k8s.io/v2"
AGGREGATED_V2BETA1 = "apidiscovery.k8s.io/v2beta1"


def _discovery_resource(r):
    entry = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": VERBS,
    }
    if r.short:
        entry["shortNames"] = r.short
    if r.categories:
        entry["categories"] = r.categories
    subs = []
    for sub, (sg, sv, skind, sverbs) in r.subresources.items():
        kind = {"group": sg or r.group, "version": sv or r.version, "kind": skind or r.kind}
        subs.append({"subresource": sub, "responseKind": kind, "verbs": sverbs})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(core, api_version):
    """APIGroupDiscoveryList for /api (core=True) or /apis."""
    names = [""] if core else GROUPS
    items = []
    for g in names:
        resources = [_discovery_resource(r) for r in BY_GROUP_VERSION[(g, "v1")].values()]
        items.append({"metadata": {"name": g, "creationTimestamp": None},
                      "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


# ----------------------------------------------------------------------------
# OpenAPI v3


def _gv_path(group, version):
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _openapi_gv_doc(group, version):
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")]
    ok = {"200": {"description": "OK"}, "201": {"description": "Created"}}
    paths = {}
    prefix = "/" + _gv_path(group, version)
    for r in BY_GROUP_VERSION[(group, version)].values():
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
        paths[base] = {
            "post": {"operationId": f"create{r.kind}", "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": ok},
        }
        paths[base + "/{name}"] = {
            "patch": {"operationId": f"patch{r.kind}", "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": ok},
            "put": {"operationId": f"replace{r.kind}", "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": ok},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


OPENAPI_DOCS = {}
for (_g, _v) in BY_GROUP_VERSION:
    OPENAPI_DOCS[_gv_path(_g, _v)] = json.dumps(_openapi_gv_doc(_g, _v)).encode()


def openapi_root():
    paths = {}
    for gv, body in OPENAPI_DOCS.items():
        digest = hashlib.sha512(body).hexdigest()[:64].upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}
