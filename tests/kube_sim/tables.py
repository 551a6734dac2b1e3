"""Server-side printing: `meta.k8s.io/v1 Table` answers, which plain
`kubectl get` (no -o) asks for. Columns follow the real server's defaults.
"""

import datetime


def age(obj):
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    then = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    s = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    if s < 120:
        return f"{max(s, 0)}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _deployment(o):
    s, want = o.get("status") or {}, o["spec"].get("replicas", 1)
    return [("Ready", f'{s.get("readyReplicas", 0)}/{want}'), ("Up-to-date", s.get("updatedReplicas", 0)),
            ("Available", s.get("availableReplicas", 0))]


def _replicaset(o):
    s = o.get("status") or {}
    return [("Desired", o["spec"].get("replicas", 1)), ("Current", s.get("replicas", 0)),
            ("Ready", s.get("readyReplicas", 0))]


def _statefulset(o):
    s = o.get("status") or {}
    return [("Ready", f'{s.get("readyReplicas", 0)}/{o["spec"].get("replicas", 1)}')]


def _pod_reason(s):
    """The STATUS column as kubectl's printer derives it: the last container's waiting or
    terminated reason (CreateContainerConfigError, Completed, Error, ...), else the phase."""
    reason, running = s.get("reason") or s.get("phase", "Pending"), False
    for c in reversed(s.get("containerStatuses") or []):
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or f'ExitCode:{state["terminated"].get("exitCode", 0)}'
        elif c.get("ready") and "running" in state:
            running = True
    if reason == "Completed" and running:
        reason = "Running"
    return reason


def _pod(o):
    s = o.get("status") or {}
    cs = s.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    return [("Ready", f"{ready}/{len(o['spec'].get('containers') or [])}"), ("Status", _pod_reason(s)),
            ("Restarts", sum(c.get("restartCount", 0) for c in cs))]


def _job(o):
    s = o.get("status") or {}
    conds = {c["type"]: c["status"] for c in s.get("conditions") or []}
    status = ("Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True"
              else "Running")
    return [("Status", status), ("Completions", f'{s.get("succeeded", 0)}/{o["spec"].get("completions", 1)}')]


def _service(o):
    spec = o.get("spec") or {}
    ports = ",".join(f'{p.get("port")}/{p.get("protocol", "TCP")}' for p in spec.get("ports") or []) or "<none>"
    return [("Type", spec.get("type", "ClusterIP")), ("Cluster-IP", spec.get("clusterIP", "<none>")),
            ("External-IP", "<none>"), ("Port(s)", ports)]


def _endpoints(o):
    addrs = [f'{a["ip"]}:{p["port"]}' for s in o.get("subsets") or [] for a in s.get("addresses") or []
             for p in s.get("ports") or []]
    return [("Endpoints", ",".join(addrs) or "<none>")]


def _pvc(o):
    s, spec = o.get("status") or {}, o.get("spec") or {}
    return [("Status", s.get("phase", "Pending")), ("Volume", spec.get("volumeName", "")),
            ("Capacity", (s.get("capacity") or {}).get("storage", "")),
            ("Access Modes", ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX",
                                       "ReadWriteMany": "RWX"}.get(m, m) for m in s.get("accessModes") or [])),
            ("StorageClass", spec.get("storageClassName", ""))]


_COLUMNS = {
    "Deployment": _deployment, "ReplicaSet": _replicaset, "StatefulSet": _statefulset, "Pod": _pod, "Job": _job, "Service": _service,
    "Endpoints": _endpoints, "PersistentVolumeClaim": _pvc,
    "ConfigMap": lambda o: [("Data", len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "Secret": lambda o: [("Type", o.get("type", "Opaque")), ("Data", len(o.get("data") or {}))],
    "Namespace": lambda o: [("Status", (o.get("status") or {}).get("phase", "Active"))],
}


def to_table(kind, items, resource_version, include_object):
    extra = _COLUMNS.get(kind, lambda o: [])
    names = ["Name"] + [n for n, _ in (extra(items[0]) if items else [])] + ["Age"]
    if not items:
        sample = {"metadata": {}, "spec": {}, "status": {}}
        try:
            names = ["Name"] + [n for n, _ in extra(sample)] + ["Age"]
        except (KeyError, TypeError):
            pass
    columns = [{"name": n, "type": "integer" if n in ("Restarts", "Up-to-date", "Available", "Data", "Desired", "Current") else "string",
                "format": "name" if n == "Name" else "", "description": n, "priority": 0} for n in names]
    rows = []
    for o in items:
        cells = [o["metadata"]["name"]] + [v for _, v in extra(o)] + [age(o)]
        if include_object == "Object":
            obj = o
        elif include_object == "None":
            obj = None
        else:
            obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        row = {"cells": cells}
        if obj is not None:
            row["object"] = obj
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
