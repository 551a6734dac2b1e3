"""What the toy controller does for each workload kind (see controller.py).

- Deployment X: one ReplicaSet `X-<hash>` per pod template (hash of the
  template), carrying the `deployment.kubernetes.io/revision` annotation;
  the current one gets `spec.replicas`, older ones 0 and are kept up to
  `revisionHistoryLimit` (so `rollout history` and `rollout undo` work; an
  undo to an older template revives its ReplicaSet under a new revision).
  `spec.paused` stops new ReplicaSets. A template change replaces all pods
  at once (no surge).
- ReplicaSet X: pods `X-<n>` (so a deployment's pods are `X-<hash>-<n>`),
  n = 0..replicas-1, with the template's labels plus `pod-template-hash`.
- StatefulSet X: pods `X-<n>` as on a real cluster, plus a PVC
  `<claim>-X-<n>` per volumeClaimTemplate (kept on scale-down); a template
  change replaces the pods; `rollout status` sees RollingUpdate complete.
- Job X: one pod `X-<5 chars>`; after the controller's job duration (or
  the template annotation `sim.runbook/job-duration-ms`) the job is
  Complete, or Failed when the template has the annotation
  `sim.runbook/job-result: fail` or a container env var `SIM_JOB_RESULT=fail`.
- Job X whose template has the annotation `sim.runbook/run: local`
  (local_job()): its pods run their first container's command as local
  processes (local_pods.py: environment from `value`, secretKeyRef,
  configMapKeyRef, fieldRef and envFrom; the pid in the pod annotation
  `sim.runbook/pid`; POST /_sim/pods/NS/NAME/kill for a node loss), and the
  job controller's rules apply: a failed pod counts in status.failed and is
  replaced by a new pod `X-<5 random chars>` while failed <= backoffLimit
  (then Failed, BackoffLimitExceeded); spec.podFailurePolicy rules FailJob /
  Ignore / Count on exit codes or pod conditions (DisruptionTarget is set on
  pods killed by a delete or the kill endpoint); restartPolicy OnFailure
  restarts the container in the same pod; completions, parallelism,
  activeDeadlineSeconds and suspend are honoured. No backoff delays.
"""

import copy
import hashlib
import json
import secrets
import time

import local_pods
from resources import BY_KEY

DEPLOY, RS = BY_KEY["apps/deployments"], BY_KEY["apps/replicasets"]
STS, JOB = BY_KEY["apps/statefulsets"], BY_KEY["batch/jobs"]
POD, PVC = BY_KEY["/pods"], BY_KEY["/persistentvolumeclaims"]

ANN_REVISION = "deployment.kubernetes.io/revision"
ANN_JOB_RESULT = "sim.runbook/job-result"
ANN_JOB_DURATION = "sim.runbook/job-duration-ms"
ENV_JOB_RESULT = "SIM_JOB_RESULT"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def template_hash(template, length=10):
    """A short stable hash; null fields (kubectl sends `creationTimestamp: null`) do not count."""
    n = int(hashlib.sha256(json.dumps(_without_nulls(template), sort_keys=True).encode()).hexdigest(), 16)
    out = ""
    for _ in range(length):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def condition(old_conditions, ctype, status, reason, message, now):
    """A condition that keeps its old timestamps when nothing about it changed."""
    for c in old_conditions or []:
        if c.get("type") == ctype and c.get("status") == status and c.get("reason") == reason:
            return copy.deepcopy(c)
    c = {"type": ctype, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}
    if ctype in ("Available", "Progressing"):
        c["lastUpdateTime"] = now
    return c


def owner_ref(res, obj):
    return {"apiVersion": res.api_version, "kind": res.kind, "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def owned_by(obj, owner):
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences") or [])


def pod_ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _drop_zeros(status, keep=("replicas", "observedGeneration")):
    return {k: v for k, v in status.items() if v or k in keep}


def reconcile_all(ctl, now):
    for d in ctl.all(DEPLOY):
        deployment_sets(ctl, d)
    for rs in ctl.all(RS):
        replicaset(ctl, rs, now)
    for d in ctl.all(DEPLOY):
        deployment_status(ctl, d, now)
    for s in ctl.all(STS):
        statefulset(ctl, s, now)
    jobs = ctl.all(JOB)
    for j in jobs:
        if local_pods.runs_locally(j["spec"].get("template") or {}):
            local_job(ctl, j, now)
        else:
            job(ctl, j, now)
    live = [j["metadata"]["uid"] for j in jobs]
    ctl.kubelet.forget_tombstones(live)
    for uid in set(ctl.job_counted) - set(live):
        del ctl.job_counted[uid]


# ----------------------------------------------------------------------------
# Deployments and ReplicaSets


def _revision(obj):
    return int((obj["metadata"].get("annotations") or {}).get(ANN_REVISION, "0") or 0)


def _owned_sets(ctl, d):
    return [rs for rs in ctl.all(RS, d["metadata"]["namespace"]) if owned_by(rs, d)]


def _set_replicas(ctl, rs, replicas):
    if rs["spec"].get("replicas") != replicas:
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = replicas
        return ctl.store.update(RS, rs["metadata"]["namespace"], rs["metadata"]["name"], rs)
    return rs


def _set_annotations(d, revision):
    """The annotations a deployment's current ReplicaSet carries (change-cause included)."""
    out = {k: v for k, v in (d["metadata"].get("annotations") or {}).items()
           if not k.startswith(("kubectl.kubernetes.io/", "deployment.kubernetes.io/"))}
    want = d["spec"].get("replicas", 1)
    out.update({ANN_REVISION: str(revision), "deployment.kubernetes.io/desired-replicas": str(want),
                "deployment.kubernetes.io/max-replicas": str(want + 1)})
    return out


def _new_set(ctl, d, h, revision):
    ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
    tmpl = copy.deepcopy(d["spec"].get("template") or {})
    tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
    selector = copy.deepcopy(d["spec"].get("selector") or {})
    selector.setdefault("matchLabels", {})["pod-template-hash"] = h
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": f"{name}-{h}", "namespace": ns, "labels": dict(tmpl["metadata"]["labels"]),
                       "annotations": _set_annotations(d, revision), "ownerReferences": [owner_ref(DEPLOY, d)]},
          "spec": {"replicas": d["spec"].get("replicas", 1), "selector": selector, "template": tmpl}}
    if ctl.store.find(RS, ns, rs["metadata"]["name"]) is not None:  # a leftover of an earlier owner
        ctl.store.delete(RS, ns, rs["metadata"]["name"])
    return ctl.store.create(RS, ns, rs)


def deployment_sets(ctl, d):
    """Create, revive, scale and prune the deployment's ReplicaSets."""
    spec = d["spec"]
    h = template_hash(spec.get("template") or {})
    sets = _owned_sets(ctl, d)
    top = max((_revision(rs) for rs in sets), default=0)
    current = next((rs for rs in sets if rs["metadata"].get("labels", {}).get("pod-template-hash") == h), None)
    if spec.get("paused"):
        if current is None and sets:
            current = max(sets, key=_revision)
    elif current is None:
        current = _new_set(ctl, d, h, top + 1)
    if current is None:
        return
    revision = _revision(current) if _revision(current) == top or spec.get("paused") else top + 1
    annotations = _set_annotations(d, revision)  # a rollback revives an old set under a new revision
    if current["metadata"].get("annotations") != annotations:
        current = copy.deepcopy(current)
        current["metadata"]["annotations"] = annotations
        current = ctl.store.update(RS, current["metadata"]["namespace"], current["metadata"]["name"], current)
    old = []
    for rs in sets:
        if rs["metadata"]["uid"] != current["metadata"]["uid"]:
            old.append(_set_replicas(ctl, rs, 0))
    _set_replicas(ctl, current, spec.get("replicas", 1))
    limit = spec.get("revisionHistoryLimit", 10)
    old.sort(key=_revision)
    for rs in old[:max(0, len(old) - limit)]:
        ctl.store.delete(RS, rs["metadata"]["namespace"], rs["metadata"]["name"])
    revision = str(_revision(current))
    if (d["metadata"].get("annotations") or {}).get(ANN_REVISION) != revision:
        d = copy.deepcopy(d)
        d["metadata"].setdefault("annotations", {})[ANN_REVISION] = revision
        ctl.store.update(DEPLOY, d["metadata"]["namespace"], d["metadata"]["name"], d)


def replicaset(ctl, rs, now):
    name = rs["metadata"]["name"]
    tmpl = rs["spec"].get("template") or {}
    desired = {f"{name}-{i}": ctl.new_pod(RS, rs, f"{name}-{i}", tmpl, {})
               for i in range(rs["spec"].get("replicas", 1))}
    pods = ctl.sync_pods(rs, desired, now)
    ready = sum(1 for p in pods if pod_ready(p))
    ctl.set_status(RS, rs, _drop_zeros({
        "replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
        "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}))


def deployment_status(ctl, d, now):
    d = ctl.store.find(DEPLOY, d["metadata"]["namespace"], d["metadata"]["name"]) or d
    spec = d["spec"]
    h = template_hash(spec.get("template") or {})
    sets = _owned_sets(ctl, d)
    pods = [p for p in ctl.all(POD, d["metadata"]["namespace"]) if any(owned_by(p, rs) for rs in sets)]
    ready = sum(1 for p in pods if pod_ready(p))
    updated = sum(1 for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash") == h)
    want = spec.get("replicas", 1)
    old = d.get("status") or {}
    status = _drop_zeros({"observedGeneration": d["metadata"]["generation"], "replicas": len(pods),
                          "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
                          "unavailableReplicas": max(0, want - ready)})
    rs_name = f'{d["metadata"]["name"]}-{h}'
    available = ready >= want
    if spec.get("paused"):
        progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif ready >= want and updated == want == len(pods):
        progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
    else:
        progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
    status["conditions"] = [
        condition(old.get("conditions"), "Available", "True" if available else "False",
                  "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                  "Deployment has minimum availability." if available
                  else "Deployment does not have minimum availability.", now),
        condition(old.get("conditions"), "Progressing", *progressing, now),
    ]
    ctl.set_status(DEPLOY, d, status)


# ----------------------------------------------------------------------------
# StatefulSets


def _ensure_claim(ctl, owner, claim, name):
    ns = owner["metadata"]["namespace"]
    if ctl.store.find(PVC, ns, name) is not None:
        return
    labels = dict((owner["spec"].get("selector") or {}).get("matchLabels") or {})
    ctl.store.create(PVC, ns, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                               "metadata": {"name": name, "namespace": ns, "labels": labels},
                               "spec": copy.deepcopy(claim.get("spec") or {})})


def statefulset(ctl, s, now):
    spec = s["spec"]
    name, ns = s["metadata"]["name"], s["metadata"]["namespace"]
    tmpl = spec.get("template") or {}
    revision = f"{name}-{template_hash(tmpl)}"
    desired = {}
    for i in range(spec.get("replicas", 1)):
        pod_name = f"{name}-{i}"
        t = copy.deepcopy(tmpl)
        volumes = t.setdefault("spec", {}).setdefault("volumes", [])
        for claim in spec.get("volumeClaimTemplates") or []:
            cname = claim["metadata"]["name"]
            _ensure_claim(ctl, s, claim, f"{cname}-{name}-{i}")
            volumes.append({"name": cname, "persistentVolumeClaim": {"claimName": f"{cname}-{name}-{i}"}})
        labels = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": pod_name,
                  "apps.kubernetes.io/pod-index": str(i)}
        pod = ctl.new_pod(STS, s, pod_name, t, labels)
        pod["spec"].setdefault("hostname", pod_name)
        if spec.get("serviceName"):
            pod["spec"].setdefault("subdomain", spec["serviceName"])
        desired[pod_name] = pod
    for p in ctl.sync_pods(s, desired, now):  # pods of an older revision are replaced
        if p["metadata"]["labels"].get("controller-revision-hash") != revision:
            ctl.store.delete(POD, ns, p["metadata"]["name"])
            ctl.create_pod(desired[p["metadata"]["name"]], now)
    pods = [p for p in ctl.all(POD, ns) if owned_by(p, s)]
    ready = sum(1 for p in pods if pod_ready(p))
    ctl.set_status(STS, s, _drop_zeros({
        "observedGeneration": s["metadata"]["generation"], "replicas": len(pods), "readyReplicas": ready,
        "currentReplicas": len(pods), "updatedReplicas": len(pods), "availableReplicas": ready,
        "currentRevision": revision, "updateRevision": revision, "collisionCount": 0},
        keep=("replicas", "observedGeneration", "collisionCount")))


# ----------------------------------------------------------------------------
# Jobs


def _template_annotation(tmpl, key):
    return ((tmpl.get("metadata") or {}).get("annotations") or {}).get(key)


def _job_succeeds(tmpl):
    if str(_template_annotation(tmpl, ANN_JOB_RESULT) or "").lower() in ("fail", "failed", "failure"):
        return False
    for c in (tmpl.get("spec") or {}).get("containers") or []:
        for e in c.get("env") or []:
            if e.get("name") == ENV_JOB_RESULT and str(e.get("value", "")).lower() in ("fail", "failed"):
                return False
    return True


def job(ctl, j, now):
    status = j.get("status") or {}
    uid, name, ns = j["metadata"]["uid"], j["metadata"]["name"], j["metadata"]["namespace"]
    tmpl = j["spec"].get("template") or {}
    if any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
           for c in status.get("conditions") or []):
        ctl.job_due.pop(uid, None)
        return
    if j["spec"].get("suspend"):
        return
    pod_name = f"{name}-{template_hash(uid, 5)}"
    if uid not in ctl.job_due:
        ms = _template_annotation(tmpl, ANN_JOB_DURATION)
        duration = int(ms) / 1000.0 if ms and str(ms).isdigit() else ctl.job_duration
        ctl.job_due[uid] = time.monotonic() + duration
    if not status.get("startTime"):
        if ctl.store.find(POD, ns, pod_name) is None:
            ctl.create_pod(ctl.new_pod(JOB, j, pod_name, tmpl, {}), now)
        ctl.set_status(JOB, j, {"startTime": now, "active": 1, "ready": 1, "terminating": 0,
                                "uncountedTerminatedPods": {}})
        return
    if time.monotonic() < ctl.job_due[uid]:
        return
    ok = _job_succeeds(tmpl)
    pod = ctl.store.find(POD, ns, pod_name)
    if pod is not None:
        pod["status"] = ctl.pod_status(pod, now, "Succeeded" if ok else "Failed", 0 if ok else 1)
        ctl.store.update(POD, ns, pod_name, pod, subresource="status")
    new = {"startTime": status["startTime"], "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}
    if ok:
        message = "Reached expected number of succeeded pods"
        new.update(completionTime=now, succeeded=1, conditions=[
            condition(None, "SuccessCriteriaMet", "True", "CompletionsReached", message, now),
            condition(None, "Complete", "True", "CompletionsReached", message, now)])
    else:
        message = "Job has reached the specified backoff limit"
        new.update(failed=1, conditions=[
            condition(None, "FailureTarget", "True", "BackoffLimitExceeded", message, now),
            condition(None, "Failed", "True", "BackoffLimitExceeded", message, now)])
    for c in new["conditions"]:
        c["lastProbeTime"] = now
    ctl.job_due.pop(uid, None)
    ctl.set_status(JOB, j, new)


# ----------------------------------------------------------------------------
# Jobs whose pods run local processes (template annotation sim.runbook/run: local)


def _finished(status):
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _phase(pod):
    return (pod.get("status") or {}).get("phase")


def _matching_container(pod, req):
    """(name, exit code) of a container that ended with a non-zero code matching onExitCodes."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
        if not code or (req.get("containerName") and req["containerName"] != cs.get("name")):
            continue
        if (code in (req.get("values") or [])) == (req.get("operator", "In") == "In"):
            return cs.get("name"), code
    return None


def pod_failure_action(spec, pod):
    """(action, message) of the first spec.podFailurePolicy rule a failed pod matches,
    else ("Count", None). FailIndex (indexed jobs only) counts as Count."""
    where = f'{pod["metadata"]["namespace"]}/{pod["metadata"]["name"]}'
    for i, rule in enumerate((spec.get("podFailurePolicy") or {}).get("rules") or []):
        action = rule.get("action", "Count")
        if rule.get("onExitCodes"):
            hit = _matching_container(pod, rule["onExitCodes"])
            if hit:
                return action, (f"Container {hit[0]} for pod {where} failed with exit code {hit[1]} matching "
                                f"{action} rule at index {i}")
        for want in rule.get("onPodConditions") or []:
            if any(c.get("type") == want.get("type") and c.get("status") == want.get("status", "True")
                   for c in (pod.get("status") or {}).get("conditions") or []):
                return action, f"Pod {where} has condition {want.get('type')} matching {action} rule at index {i}"
    return "Count", None


def _count(spec, key):
    """spec.completions / spec.parallelism (1 when unset or null)."""
    value = spec.get(key)
    return 1 if value is None else value


def _past_backoff_on_failure(spec, active):
    """restartPolicy OnFailure: the container restarts of the live pods reach backoffLimit."""
    restarts = sum(cs.get("restartCount", 0) for p in active
                   for cs in (p.get("status") or {}).get("containerStatuses") or [])
    limit = spec.get("backoffLimit", 6)
    return restarts > 0 if limit == 0 else restarts >= limit


def _create_local_pod(ctl, j, now):
    """A new pod `<job>-<5 chars>` for the job, created Pending, then started."""
    ns, name = j["metadata"]["namespace"], j["metadata"]["name"]
    while True:
        pod_name = f"{name}-" + "".join(secrets.choice(_ALPHABET) for _ in range(5))
        if ctl.store.find(POD, ns, pod_name) is None:
            break
    pod = ctl.new_pod(JOB, j, pod_name, j["spec"].get("template") or {}, {})
    pod["spec"]["nodeName"] = ctl.node
    pod["status"] = local_pods.initial_status(ctl.next_pod_ip(), ctl.host_ip, now)
    pod = ctl.store.create(POD, ns, pod, keep_status=True)
    return ctl.kubelet.start(pod, now)


def _stop_pods(ctl, pods, counted, now):
    """Delete the job's live pods (killing their processes) without counting them again, as
    the job controller does when a Job ends or is suspended; -> (the pods deleted, the pods
    found ended). `pods` is this pass's view: a container may have exited since, its exit
    not written yet (its waiter thread waits for the store lock this pass holds). Such a pod
    has ended: its exit is written now and the pod is kept, to be counted as it ended, never
    deleted (Kubernetes keeps the pods of a finished Job)."""
    deleted, ended = [], []
    for p in pods:
        p = ctl.kubelet.current(p, now)
        if _phase(p) in ("Succeeded", "Failed"):
            ended.append(p)
            continue
        counted.add(p["metadata"]["uid"])
        ctl.store.delete(POD, p["metadata"]["namespace"], p["metadata"]["name"])
        deleted.append(p)
    return deleted, ended


def _tally(spec, ended, counted):
    """Count newly ended pods: -> (succeeded, failed, (reason, message) of a FailJob or None)."""
    succeeded = failed = 0
    fail_job = None
    for p in ended:
        if p["metadata"]["uid"] in counted:
            continue
        counted.add(p["metadata"]["uid"])
        if _phase(p) == "Succeeded":
            succeeded += 1
            continue
        action, message = pod_failure_action(spec, p) if spec["template"]["spec"].get("restartPolicy") == "Never" \
            else ("Count", None)
        if action == "Ignore":
            continue
        failed += 1
        if action == "FailJob" and fail_job is None:
            fail_job = ("PodFailurePolicy", message)
    return succeeded, failed, fail_job


def _failure(ctl, spec, uid, failed, active, fail_job):
    """(reason, message) when the job has failed, else None."""
    if fail_job:
        return fail_job
    if failed > spec.get("backoffLimit", 6) or (spec["template"]["spec"].get("restartPolicy") == "OnFailure"
                                                 and _past_backoff_on_failure(spec, active)):
        return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    if uid in ctl.job_due and time.monotonic() >= ctl.job_due[uid]:
        return "DeadlineExceeded", "Job was active longer than specified deadline"
    return None


def local_job(ctl, j, now):
    """A Job whose pods run their command here (local_pods.py), with the job controller's
    rules: a failed pod is replaced while status.failed <= backoffLimit, podFailurePolicy
    rules FailJob / Ignore / Count, OnFailure restarts in place, activeDeadlineSeconds."""
    status = j.get("status") or {}
    spec, uid, ns = j["spec"], j["metadata"]["uid"], j["metadata"]["namespace"]
    tombstones = ctl.kubelet.take_tombstones(uid)
    if _finished(status):
        ctl.job_due.pop(uid, None)
        return
    counted = ctl.job_counted.setdefault(uid, set())
    pods = [p for p in ctl.all(POD, ns) if owned_by(p, j)]
    live = [p for p in pods if _phase(p) in ("Pending", "Running") and p["metadata"]["uid"] not in counted]
    if spec.get("suspend"):
        _stop_pods(ctl, live, counted, now)  # those found ended are counted once resumed
        if status.get("active") or status.get("ready"):
            ctl.set_status(JOB, j, {**{k: v for k, v in status.items() if k != "active"}, "ready": 0})
        return
    pods = [ctl.kubelet.start(p, now) if ctl.kubelet.needs_start(p) else p for p in pods]
    ended = [p for p in pods if _phase(p) in ("Succeeded", "Failed")] + tombstones
    succeeded, failed, fail_job = _tally(spec, ended, counted)
    succeeded += status.get("succeeded", 0)
    failed += status.get("failed", 0)
    active = [p for p in pods if _phase(p) in ("Pending", "Running") and p["metadata"]["uid"] not in counted]
    if spec.get("activeDeadlineSeconds") is not None and uid not in ctl.job_due:
        ctl.job_due[uid] = time.monotonic() + spec["activeDeadlineSeconds"]
    new = {"startTime": status.get("startTime") or now, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}
    failure = _failure(ctl, spec, uid, failed, active, fail_job)
    if failure:
        stopped, ended = _stop_pods(ctl, active, counted, now)
        late_succeeded, late_failed, _ = _tally(spec, ended, counted)
        succeeded += late_succeeded
        failed += late_failed + len(stopped)
        new["conditions"] = [condition(None, "FailureTarget", "True", *failure, now),
                             condition(None, "Failed", "True", *failure, now)]
    elif succeeded >= _count(spec, "completions"):
        _, ended = _stop_pods(ctl, active, counted, now)
        late_succeeded, late_failed, _ = _tally(spec, ended, counted)
        succeeded += late_succeeded
        failed += late_failed
        message = "Reached expected number of succeeded pods"
        new.update(completionTime=now, conditions=[
            condition(None, "SuccessCriteriaMet", "True", "CompletionsReached", message, now),
            condition(None, "Complete", "True", "CompletionsReached", message, now)])
    else:
        want = min(_count(spec, "parallelism"), _count(spec, "completions") - succeeded) - len(active)
        active += [_create_local_pod(ctl, j, now) for _ in range(max(0, want))]
        new.update(active=len(active), ready=sum(1 for p in active if pod_ready(p)))
    for c in new.get("conditions") or []:
        c["lastProbeTime"] = now
    if new.get("conditions"):
        ctl.job_due.pop(uid, None)
    new.update({k: v for k, v in (("succeeded", succeeded), ("failed", failed)) if v})
    ctl.set_status(JOB, j, new)
    if not new.get("conditions") and _unsettled(ctl, j, counted):
        ctl.wake.set()  # the controller's own writes do not wake it


def _unsettled(ctl, j, counted):
    """Pods this pass left to count or to restart: a container that could not start
    ends without a waiter thread to wake the controller."""
    for p in ctl.all(POD, j["metadata"]["namespace"]):
        if owned_by(p, j) and p["metadata"]["uid"] not in counted:
            if _phase(p) in ("Succeeded", "Failed") or (_phase(p) == "Running" and ctl.kubelet.needs_start(p)):
                return True
    return False
