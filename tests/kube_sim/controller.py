"""A toy controller: makes workloads behave enough like the real ones for
kubectl `rollout status|history|undo`, `wait`, `scale`, `exec`, `port-forward`.

It runs in one thread, woken by every store change (after `delay` seconds,
so that clients see a write before its effects) and by job deadlines, and
reconciles everything on each pass; its own writes do not wake it, so each
pass must converge by itself. Passes are idempotent: writing what is already
stored does not bump resourceVersion. What each kind does is in workloads.py;
this file holds the loop, pod creation, garbage collection, endpoints and
PVC binding:
- Pods are Running and Ready at once, unless the pod (template) carries the
  annotation `sim.runbook/ready: "false"` (Running, never Ready).
- Service with a selector: an Endpoints object of the same name listing the
  pods it selects (ready ones in addresses; targetPort resolved, named too).
- Objects whose controlling owner is gone are deleted (background cascading
  deletion); bare pods become Running; PVCs become Bound.
- The pods of Jobs annotated `sim.runbook/run: local` run real local
  processes through `kubelet` (local_pods.py), whose waiter threads wake the
  controller when a process exits.
"""

import copy
import ipaddress
import itertools
import threading
import time
import traceback

import local_pods
import store as st
import workloads
from resources import BY_KEY
from workloads import owner_ref, owned_by, pod_ready, template_hash

NODE = "sim-node"
HOST_IP = "10.0.0.1"
ANN_READY = "sim.runbook/ready"

POD, SVC, EP, PVC = BY_KEY["/pods"], BY_KEY["/services"], BY_KEY["/endpoints"], BY_KEY["/persistentvolumeclaims"]
OWNER_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "Job")


class Controller:
    def __init__(self, store, delay=0.1, job_duration=0.5):
        self.store = store
        self.delay = delay
        self.job_duration = job_duration
        self.wake = threading.Event()
        self.stopped = False
        self.job_due = {}  # job uid -> monotonic deadline
        self.job_counted = {}  # run-local job uid -> uids of the pods already counted in its status
        self.pod_ips = itertools.count(2)
        self.node, self.host_ip = NODE, HOST_IP
        self.kubelet = local_pods.Kubelet(store)
        store.listeners.append(self._on_change)
        self.thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self.thread.start()

    def _on_change(self, res, etype, obj):
        if threading.current_thread() is not self.thread:
            self.wake.set()

    def stop(self):
        self.stopped = True
        self.wake.set()

    def reset(self):
        """Forget all jobs and kill every local process (the caller resets the store)."""
        with self.store.lock:
            self.job_due.clear()
            self.job_counted.clear()
            self.kubelet.kill_all()

    def _run(self):
        while not self.stopped:
            due = list(self.job_due.values())
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            if self.wake.wait(timeout):
                time.sleep(self.delay)
            self.wake.clear()
            try:
                with self.store.lock:
                    self.reconcile()
            except Exception:  # a controller bug must not kill the thread
                traceback.print_exc()

    def reconcile(self):
        now = st.now_rfc3339()
        workloads.reconcile_all(self, now)
        self._garbage_collect(now)
        for p in self.all(PVC):
            if (p.get("status") or {}).get("phase") != "Bound":
                self._claim_bound(p)
        self._endpoints()

    # -- helpers for workloads.py

    def all(self, res, ns=None):
        return self.store.list(res, ns)[0]

    def set_status(self, res, obj, status):
        if obj.get("status") != status:
            return self.store.update(res, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                     {"status": status}, subresource="status")
        return obj

    def new_pod(self, owner_res, owner, name, tmpl, extra_labels):
        meta = copy.deepcopy(tmpl.get("metadata") or {})
        meta["name"] = name
        meta["namespace"] = owner["metadata"].get("namespace")
        meta.setdefault("labels", {}).update(extra_labels)
        meta["ownerReferences"] = [owner_ref(owner_res, owner)]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})}

    def create_pod(self, pod, now):
        pod["spec"]["nodeName"] = NODE
        pod["status"] = self.pod_status(pod, now, "Running")
        self.store.create(POD, pod["metadata"]["namespace"], pod, keep_status=True)

    def next_pod_ip(self):
        return str(ipaddress.IPv4Address("10.244.0.0") + next(self.pod_ips))

    def pod_status(self, pod, now, phase, exit_code=None):
        ip = self.next_pod_ip()
        ready = phase == "Running" and (pod["metadata"].get("annotations") or {}).get(ANN_READY) != "false"
        flag = "True" if ready else "False"
        statuses = []
        for c in pod["spec"].get("containers") or []:
            if phase == "Running":
                state = {"running": {"startedAt": now}}
            else:
                state = {"terminated": {"exitCode": exit_code or 0, "reason": "Error" if exit_code else "Completed",
                                        "startedAt": now, "finishedAt": now}}
            statuses.append({"name": c.get("name"), "image": c.get("image"), "imageID": f"sim://{c.get('image')}",
                             "containerID": "sim://" + template_hash([pod["metadata"]["name"], c.get("name")], 16),
                             "ready": ready, "started": phase == "Running", "restartCount": 0, "state": state})
        conds = [{"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": now}
                 for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", flag),
                              ("ContainersReady", flag), ("PodScheduled", "True"))]
        return {"phase": phase, "conditions": conds, "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}],
                "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now, "qosClass": "BestEffort",
                "containerStatuses": statuses}

    def sync_pods(self, owner, desired, now):
        """desired: name -> pod. Deletes the owner's other pods, creates the missing ones; -> owned pods."""
        ns = owner["metadata"].get("namespace")
        owned = [p for p in self.all(POD, ns) if owned_by(p, owner)]
        for p in owned:
            if p["metadata"]["name"] not in desired:
                self.store.delete(POD, ns, p["metadata"]["name"])
        have = {p["metadata"]["name"] for p in owned}
        for name, pod in desired.items():
            if name not in have:
                if self.store.find(POD, ns, name) is not None:  # a leftover of an earlier owner
                    self.store.delete(POD, ns, name)
                self.create_pod(pod, now)
        return [p for p in self.all(POD, ns) if owned_by(p, owner)]

    # -- the rest

    def _garbage_collect(self, now):
        for res in (BY_KEY["apps/replicasets"], POD):
            owners = {o["metadata"]["uid"] for r in ("apps/deployments", "apps/replicasets", "apps/statefulsets",
                                                     "batch/jobs") for o in self.all(BY_KEY[r])}
            for obj in self.all(res):
                refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") in OWNER_KINDS]
                if refs and not any(r.get("uid") in owners for r in refs):
                    self.store.delete(res, obj["metadata"]["namespace"], obj["metadata"]["name"])
                elif res is POD and not refs and not (obj.get("status") or {}).get("phase"):
                    pod = copy.deepcopy(obj)
                    pod["spec"].setdefault("nodeName", NODE)
                    pod["metadata"].pop("resourceVersion", None)
                    pod = self.store.update(POD, obj["metadata"]["namespace"], obj["metadata"]["name"], pod)
                    self.set_status(POD, pod, self.pod_status(pod, now, "Running"))

    def _claim_bound(self, p):
        spec = p.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        status = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                  "capacity": {"storage": storage}}
        if not spec.get("volumeName"):
            obj = copy.deepcopy(p)
            obj["spec"]["volumeName"] = "pvc-" + p["metadata"]["uid"]
            obj["spec"].setdefault("storageClassName", "standard")
            obj["metadata"].pop("resourceVersion", None)
            p = self.store.update(PVC, p["metadata"]["namespace"], p["metadata"]["name"], obj)
        self.set_status(PVC, p, status)

    def _endpoints(self):
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in self.all(SVC)}
        for (ns, name), svc in services.items():
            selector = (svc.get("spec") or {}).get("selector")
            if not selector:
                continue
            reqs = st.parse_label_selector(st.selector_string(selector))
            pods = [p for p in self.all(POD, ns) if st.labels_match(reqs, p["metadata"].get("labels"))
                    and (p.get("status") or {}).get("phase") == "Running"]
            ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}}
            if svc["metadata"].get("labels"):
                ep["metadata"]["labels"] = dict(svc["metadata"]["labels"])
            if pods:
                subset = {}
                ready = [self._address(p) for p in pods if pod_ready(p)]
                not_ready = [self._address(p) for p in pods if not pod_ready(p)]
                if ready:
                    subset["addresses"] = ready
                if not_ready:
                    subset["notReadyAddresses"] = not_ready
                subset["ports"] = [self._endpoint_port(port, pods[0]) for port in svc["spec"].get("ports") or []]
                ep["subsets"] = [subset]
            if self.store.find(EP, ns, name) is None:
                self.store.create(EP, ns, ep)
            else:
                self.store.update(EP, ns, name, ep)
        for e in self.all(EP):
            if (e["metadata"]["namespace"], e["metadata"]["name"]) not in services:
                self.store.delete(EP, e["metadata"]["namespace"], e["metadata"]["name"])

    def _address(self, pod):
        return {"ip": pod["status"]["podIP"], "nodeName": NODE,
                "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
                              "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}

    def _endpoint_port(self, port, pod):
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str) and not target.isdigit():
            for c in pod["spec"].get("containers") or []:
                for p in c.get("ports") or []:
                    if p.get("name") == target:
                        target = p.get("containerPort")
        if isinstance(target, str) and not target.isdigit():
            target = port.get("port")  # a named port no container declares
        out = {"port": int(target), "protocol": port.get("protocol", "TCP")}
        if port.get("name"):
            out["name"] = port["name"]
        return out
