"""Defaulting and validation, applied on every create and update.

Defaulting fills what a real API server fills so that `kubectl get -o json`
looks familiar and `rollout status` finds the fields it reads (a statefulset's
RollingUpdate strategy, a deployment's replicas). It must be idempotent: the
store compares the defaulted result with the stored object to detect no-ops.
Validation covers the mistakes a runbook is likely to make; the schema itself
is not checked (unknown fields are kept, not rejected).
"""

import base64
import ipaddress
import itertools
import re

import store as st

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_cluster_ips = itertools.count(1)
_node_ports = itertools.count(30000)


def _container_defaults(c):
    image = c.get("image", "")
    c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]
                 else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


def _pod_spec_defaults(spec, restart="Always"):
    spec.setdefault("restartPolicy", restart)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _container_defaults(c)


def _template(obj, restart="Always"):
    tmpl = obj.setdefault("spec", {}).setdefault("template", {})
    tmpl.setdefault("metadata", {})
    _pod_spec_defaults(tmpl.setdefault("spec", {}), restart)
    return tmpl


def _deployment(obj, store):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("strategy", {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(obj)


def _statefulset(obj, store):
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _template(obj)


def _job(obj, store):
    spec = obj.setdefault("spec", {})
    for k, v in (("backoffLimit", 6), ("completions", 1), ("parallelism", 1),
                 ("completionMode", "NonIndexed"), ("suspend", False),
                 ("podReplacementPolicy", "TerminatingOrFailed")):
        spec.setdefault(k, v)
    uid = obj["metadata"]["uid"]
    name = obj["metadata"]["name"]
    tmpl = _template(obj, "Never")
    labels = tmpl["metadata"].setdefault("labels", {})
    for k, v in (("batch.kubernetes.io/controller-uid", uid), ("batch.kubernetes.io/job-name", name),
                 ("controller-uid", uid), ("job-name", name)):
        labels.setdefault(k, v)
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})


def _pod(obj, store):
    _pod_spec_defaults(obj.setdefault("spec", {}))


def _service(obj, store):
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec.get("clusterIP") != "None" and not spec.get("clusterIP") and spec["type"] != "ExternalName":
        n = next(_cluster_ips)
        spec["clusterIP"] = str(ipaddress.IPv4Address("10.96.0.0") + n)
    if spec.get("clusterIP"):
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if "port" in p:
            p.setdefault("targetPort", p["port"])
        if spec["type"] in ("NodePort", "LoadBalancer"):
            p.setdefault("nodePort", next(_node_ports))
    obj.setdefault("status", {"loadBalancer": {}})


def _secret(obj, store):
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if string_data or "data" in obj else None
    for k, v in string_data.items():
        data[k] = base64.b64encode(str(v).encode()).decode()


def _namespace(obj, store):
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    obj.setdefault("status", {"phase": "Active"})
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _pvc(obj, store):
    obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {"phase": "Pending"})


def _replicaset(obj, store):
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _template(obj)


_DEFAULTERS = {"apps/deployments": _deployment, "apps/replicasets": _replicaset,
               "apps/statefulsets": _statefulset, "batch/jobs": _job,
               "/pods": _pod, "/services": _service, "/secrets": _secret, "/namespaces": _namespace,
               "/persistentvolumeclaims": _pvc}


def apply(res, obj, store):
    fn = _DEFAULTERS.get(res.key)
    if fn:
        fn(obj, store)


# ----------------------------------------------------------------------------
# Validation


def _containers(spec, path, causes):
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not containers:
        causes.append((f"{path}.containers", "Required value"))
        return
    for i, c in enumerate(containers):
        if not isinstance(c, dict) or not c.get("name"):
            causes.append((f"{path}.containers[{i}].name", "Required value"))
        elif not c.get("image"):
            causes.append((f"{path}.containers[{i}].image", "Required value"))


def _workload(obj, causes, restart_ok=("Always",)):
    spec = obj.get("spec") or {}
    tmpl = spec.get("template") or {}
    if spec.get("replicas", 0) < 0:
        causes.append(("spec.replicas", f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
    selector = spec.get("selector")
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    else:
        reqs = st.parse_label_selector(st.selector_string(selector.get("matchLabels")))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            causes.append(("spec.selector", "Invalid value: empty selector is invalid for deployment"))
        elif not st.labels_match(reqs, labels):
            causes.append(("spec.template.metadata.labels",
                           f"Invalid value: {labels!r}: `selector` does not match template `labels`"))
    pod_spec = tmpl.get("spec") or {}
    _containers(pod_spec, "spec.template.spec", causes)
    if pod_spec.get("restartPolicy") not in restart_ok:
        allowed = ", ".join(f'"{r}"' for r in restart_ok)
        causes.append(("spec.template.spec.restartPolicy",
                       f'Unsupported value: "{pod_spec.get("restartPolicy")}": supported values: {allowed}'))


def validate(res, obj):
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes = []
    pattern = _DNS_LABEL if res.key in ("/services", "/namespaces") else _DNS_SUBDOMAIN
    if len(name) > 253 or not pattern.match(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of '
                       "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                       "alphanumeric character"))
    for field in ("labels", "annotations"):
        for k, v in (meta.get(field) or {}).items():
            if not isinstance(v, str):
                causes.append((f"metadata.{field}", f"Invalid value: {k}: value must be a string"))
    if res.key in ("apps/deployments", "apps/statefulsets", "apps/replicasets"):
        _workload(obj, causes)
    elif res.key == "batch/jobs":
        _workload(obj, causes, ("OnFailure", "Never"))
    elif res.key == "/pods":
        _containers(obj.get("spec"), "spec", causes)
    elif res.key == "/configmaps":
        for k, v in (obj.get("data") or {}).items():
            if not isinstance(v, str):
                causes.append((f"data[{k}]", "Invalid value: must be a string"))
    elif res.key == "/secrets":
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except Exception:
                causes.append((f"data[{k}]", "Invalid value: illegal base64 data"))
    if causes:
        raise st.invalid(res, name, causes)


def validate_update(res, old, new):
    """What an update may not change: an immutable ConfigMap's or Secret's data
    (changed by deleting it and creating it anew)."""
    if res.key not in ("/configmaps", "/secrets") or not old.get("immutable"):
        return
    causes = []
    for field in ("data", "binaryData") if res.key == "/configmaps" else ("data",):
        if (new.get(field) or {}) != (old.get(field) or {}):
            causes.append((field, "Forbidden: field is immutable when `immutable` is set"))
    if not new.get("immutable"):
        causes.append(("immutable", "Forbidden: field is immutable when `immutable` is set"))
    if causes:
        raise st.invalid(res, old["metadata"]["name"], causes)
