"""A toy kubelet for run-local pods: the pods of a Job whose pod template
carries the annotation `sim.runbook/run: local` (see workloads.py).

Such a pod runs `command + args` of its first container (the image is
ignored; command[0] is looked up in PATH) as a child process of the
simulator, in its own process group (start_new_session), stdin /dev/null,
stdout and stderr to one log file per pod (what `kubectl logs` shows).
Its environment holds only PATH, HOME, LANG and TMPDIR from the simulator's
own environment, then the container's `envFrom` and `env` (`value`,
`valueFrom` `secretKeyRef`, `configMapKeyRef`, `fieldRef`), with `$(VAR)`
references expanded in env values, command and args as Kubernetes does. A
secret, config map or key that is missing and not `optional` keeps the pod
Pending (container waiting, reason CreateContainerConfigError); the
controller retries on later passes. The pid is published in the pod
annotation `sim.runbook/pid`.

A waiter thread per process notices its exit and writes the pod status under
the store lock (which wakes the controller): Succeeded (exit 0) or Failed
(exit code, or 128+N after signal N), the container `terminated`. With
`restartPolicy: OnFailure` a failed container leaves the pod Running with
the container terminated; the job controller restarts it (start() again,
restartCount + 1). Deleting a pod (or a reset) SIGKILLs its process group;
so does `kill()` (POST /_sim/pods/NS/NAME/kill, a node loss), after which
the pod is Failed with condition DisruptionTarget. When a process exits, the
rest of its process group is killed too, as a container's would be. A pod
of a run-local Job deleted before the job controller counted it leaves a
tombstone (the pod as it ended, Failed with DisruptionTarget when it was
still active) for the job controller, since the pod itself is gone from the
store.

A process's exit is written once, by whoever sees it first: its waiter
thread, or current(), which the job controller (before it deletes the live
pods of a Job that ended), the kill endpoint and a pod's deletion call. The
waiter thread may lag (it kills what the command left behind, then waits for
the store lock, which the controller holds for a whole pass): a pod whose
process has exited has ended, even before its waiter wrote it, and is never
deleted, killed or counted as still live.

All state is guarded by the store lock, which the controller holds while it
reconciles.
"""

import base64
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid

import store as st
from resources import BY_KEY

POD, SECRET, CONFIGMAP = BY_KEY["/pods"], BY_KEY["/secrets"], BY_KEY["/configmaps"]
ANN_RUN = "sim.runbook/run"
ANN_PID = "sim.runbook/pid"
ANN_READY = "sim.runbook/ready"
INHERITED_ENV = ("PATH", "HOME", "LANG", "TMPDIR")
DISRUPTED_BY_KILL = ("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint (simulated node "
                     "loss: POST /_sim/pods/.../kill)")
DISRUPTED_BY_DELETE = ("DeletionByTaintManager", "Pod deleted through the API: its process group was killed")
_FIELD_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']*)'\]$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def runs_locally(obj):
    """Whether a pod (or pod template) asks for a local process."""
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ANN_RUN) == "local"


def exit_code(returncode):
    """A Popen returncode as a container exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def expand(text, env):
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
    anything else (an undefined name included) is kept as written."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1:
                name = text[i + 2:end]
                out.append(env[name] if name in env else text[i:end + 1])
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


# ----------------------------------------------------------------------------
# The environment of a container


class ConfigError(Exception):
    """The container's configuration cannot be resolved (CreateContainerConfigError)."""


def _decoded(value):
    return base64.b64decode(value).decode("utf-8", "surrogateescape")


def _source_data(store, res, ns, name, optional):
    """{key: text} of a secret or config map; None when it is missing and optional."""
    obj = store.find(res, ns, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{res.singular} "{name}" not found')
    if res is SECRET:
        data = {k: _decoded(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return data
    data = {k: _decoded(v) for k, v in (obj.get("binaryData") or {}).items()}
    data.update(obj.get("data") or {})
    return data


def _key_ref(store, ns, res, ref):
    """The value a secretKeyRef / configMapKeyRef names; None when optional and missing."""
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    data = _source_data(store, res, ns, name, optional)
    if data is None:
        return None
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {res.kind} {ns}/{name}")
    return data[key]


def field_value(pod, path):
    """A `fieldRef.fieldPath` of the downward API."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    m = _FIELD_REF.match(path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
              "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
              "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs") or []),
              "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs") or [])}
    if path not in simple:
        raise ConfigError(f'fieldRef "{path}" is not supported by the simulator')
    return simple[path] or ""


def _env_value(store, pod, env, source):
    ns = pod["metadata"]["namespace"]
    if "valueFrom" not in source:
        return expand(str(source.get("value", "")), env)
    ref = source["valueFrom"] or {}
    if "secretKeyRef" in ref:
        return _key_ref(store, ns, SECRET, ref["secretKeyRef"] or {})
    if "configMapKeyRef" in ref:
        return _key_ref(store, ns, CONFIGMAP, ref["configMapKeyRef"] or {})
    if "fieldRef" in ref:
        return field_value(pod, (ref["fieldRef"] or {}).get("fieldPath", ""))
    raise ConfigError(f"env {source.get('name')}: {', '.join(ref) or 'an empty valueFrom'} is not supported "
                      "by the simulator")


def container_env(store, pod, container):
    """The container's own variables (envFrom, then env, in order), or ConfigError."""
    ns, env = pod["metadata"]["namespace"], {}
    for source in container.get("envFrom") or []:
        for res, key in ((SECRET, "secretRef"), (CONFIGMAP, "configMapRef")):
            if key in source:
                ref = source[key] or {}
                data = _source_data(store, res, ns, ref.get("name", ""), bool(ref.get("optional"))) or {}
                for k, v in data.items():
                    name = source.get("prefix", "") + k
                    if _ENV_NAME.match(name):
                        env[name] = v
    for source in container.get("env") or []:
        value = _env_value(store, pod, env, source)
        if value is not None and source.get("name"):
            env[source["name"]] = value
    return env


# Every process of a container carries this (inherited by what it starts,
# unless a child clears its environment): the simulator's stand-in for the
# container's cgroup, so that killing a container kills all of it, also the
# children that lead their own process groups or outlived their parent.
CONTAINER_MARK = "SIM_CONTAINER"


def process_env(own, mark):
    """What the process gets: a few variables of the simulator's environment, the container's,
    and the container's mark."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env.update(own)
    env[CONTAINER_MARK] = mark
    return env


def kill_marked(mark):
    """SIGKILL every process whose environment carries `mark` (a container's), stopping them all
    first so that none starts another meanwhile."""
    needle = f"{CONTAINER_MARK}={mark}".encode()
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle not in f.read().split(b"\0"):
                        continue
                os.kill(int(entry), sig)
            except OSError:
                pass


# ----------------------------------------------------------------------------
# Pod status


def _pod_condition(old, ctype, status, now, reason=None, message=None):
    """A pod condition that keeps its old transition time while it stays the same."""
    for c in old or []:
        if c.get("type") == ctype and c.get("status") == status and c.get("reason") == reason:
            return dict(c)
    c = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _other_state(phase, now):
    """The state reported for containers after the first (they are not run)."""
    if phase == "Running":
        return {"running": {"startedAt": now}}
    if phase == "Pending":
        return {"waiting": {"reason": "ContainerCreating"}}
    return {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}


def pod_status(pod, now, phase, state, restarts=0, last_state=None, disruption=None):
    """The pod's status with `state` as its first container's state; podIP, hostIP and
    startTime are kept from the stored status. disruption: (reason, message) of a
    DisruptionTarget condition."""
    old = pod.get("status") or {}
    containers = pod["spec"].get("containers") or []
    running = "running" in state
    ready = phase == "Running" and running and \
        (pod["metadata"].get("annotations") or {}).get(ANN_READY) != "false"
    statuses = []
    for i, c in enumerate(containers):
        s = state if i == 0 else _other_state(phase, now)
        cs = {"name": c.get("name"), "image": c.get("image"), "imageID": f"sim://{c.get('image')}",
              "ready": ready, "started": "running" in s, "restartCount": restarts if i == 0 else 0,
              "state": s, "lastState": (last_state or {}) if i == 0 else {}}
        cid = (s.get("running") or s.get("terminated") or {}).get("containerID")
        if cid:
            cs["containerID"] = cid
        statuses.append(cs)
    names = [c.get("name") for c in containers]
    not_ready = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase, "ContainersNotReady")
    message = None if phase in ("Succeeded", "Failed") else f"containers with unready status: [{' '.join(names)}]"
    old_conds = old.get("conditions")
    conds = []
    if disruption:
        conds.append(_pod_condition(old_conds, "DisruptionTarget", "True", now, *disruption))
    conds += [_pod_condition(old_conds, "PodReadyToStartContainers",
                             "False" if phase in ("Succeeded", "Failed") else "True", now),
              _pod_condition(old_conds, "Initialized", "True", now)]
    for ctype in ("Ready", "ContainersReady"):
        conds.append(_pod_condition(old_conds, ctype, "True", now) if ready else
                     _pod_condition(old_conds, ctype, "False", now, not_ready, message))
    conds.append(_pod_condition(old_conds, "PodScheduled", "True", now))
    out = {k: old[k] for k in ("hostIP", "hostIPs", "podIP", "podIPs", "startTime", "qosClass") if k in old}
    out.update(phase=phase, conditions=conds, containerStatuses=statuses)
    return out


def initial_status(ip, host_ip, now):
    """The status of a pod just bound to the node, before its container runs."""
    return {"phase": "Pending", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip,
            "podIPs": [{"ip": ip}], "startTime": now, "qosClass": "BestEffort"}


def _terminated(code, reason, started, finished, container_id=None, message=None):
    t = {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished}
    if container_id:
        t["containerID"] = container_id
    if message:
        t["message"] = message
    return {"terminated": t}


def first_state(pod):
    """The first container's state in the stored status ({} when none)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return (statuses[0].get("state") or {}) if statuses else {}


def _phase(pod):
    return (pod.get("status") or {}).get("phase")


def _restarts(pod):
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0].get("restartCount", 0) if statuses else 0


# ----------------------------------------------------------------------------
# Processes


class _Proc:
    """One run of a pod's first container."""

    def __init__(self, pod, popen, started_at, restarts, last_state, mark):
        self.ns, self.name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.popen = popen
        self.started_at = started_at
        self.restarts = restarts
        self.last_state = last_state
        self.container_id = f"sim://pid-{popen.pid}"
        self.mark = mark  # in the environment of every process of this container
        self.disruption = None  # (reason, message) once killed as a disruption
        self.deleted = False  # the pod is gone: nothing to report
        self.ended = False  # its exit is written (by its waiter, or by whoever saw it first)
        self.done = threading.Event()  # set once the waiter thread is through

    def exited(self):
        """The container's exit code once its process has exited, whether or not the waiter
        thread has reaped it yet; else None. Never reaps (the waiter does)."""
        if self.popen.returncode is not None:
            return exit_code(self.popen.returncode)
        try:
            info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # the waiter reaped it this very moment: its returncode follows
            return exit_code(self.popen.wait())
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status

    def kill(self):
        if self.popen.returncode is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except OSError:
                pass
        kill_marked(self.mark)


class Kubelet:
    """Starts the processes of run-local pods, reports their exits, kills them."""

    def __init__(self, store):
        self.store = store
        self.procs = {}  # pod uid -> _Proc, until its exit is handled
        self.logs = {}  # (ns, pod name) -> log file path
        self.tombstones = {}  # job uid -> [pod as it ended]
        self.log_dir = tempfile.mkdtemp(prefix="kube_sim_pods_")
        store.listeners.append(self._on_change)

    # -- starting

    def needs_start(self, pod):
        """A Pending pod that has not started (e.g. it waits for a secret), or an OnFailure pod
        whose container exited with an error and waits for its restart."""
        if pod["metadata"]["uid"] in self.procs:
            return False
        phase = (pod.get("status") or {}).get("phase")
        return phase == "Pending" or (phase == "Running" and "terminated" in first_state(pod))

    def start(self, pod, now):
        """Run the stored pod's first container; writes the pod's annotation and status."""
        with self.store.lock:
            container = (pod["spec"].get("containers") or [{}])[0]
            restarts, last_state = _restarts(pod), {}
            if "terminated" in first_state(pod):
                restarts, last_state = restarts + 1, first_state(pod)
            try:
                own = container_env(self.store, pod, container)
            except ConfigError as e:
                state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                return self._write_status(pod, pod_status(pod, now, "Pending", state, restarts, last_state))
            argv = [expand(str(a), own) for a in (container.get("command") or []) + (container.get("args") or [])]
            try:
                mark = uuid.uuid4().hex
                popen = self._spawn(pod, container, argv, process_env(own, mark))
            except (OSError, ValueError) as e:
                return self._start_failed(pod, now, argv, e, restarts, last_state)
            proc = _Proc(pod, popen, now, restarts, last_state, mark)
            self.procs[proc.uid] = proc
            threading.Thread(target=self._wait, args=(proc,), name=f"wait-{proc.name}", daemon=True).start()
            annotated = _with_annotation(pod, ANN_PID, str(popen.pid))
            pod = self.store.update(POD, proc.ns, proc.name, annotated)
            state = {"running": {"startedAt": now, "containerID": proc.container_id}}
            return self._write_status(pod, pod_status(pod, now, "Running", state, restarts, last_state))

    def _spawn(self, pod, container, argv, env):
        if not argv:
            raise OSError(f"container {container.get('name')} has no command: a run-local pod runs its "
                          "container's command (the image is ignored)")
        path = self.logs.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if path is None:
            path = os.path.join(self.log_dir, f'{pod["metadata"]["namespace"]}_{pod["metadata"]["name"]}.log')
            self.logs[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = path
        cwd = container.get("workingDir")
        with open(path, "ab") as log:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    cwd=cwd if cwd and os.path.isdir(cwd) else None, start_new_session=True)

    def _start_failed(self, pod, now, argv, err, restarts, last_state):
        """The container could not start (command not found...): exit code 128, StartError."""
        why = getattr(err, "strerror", None) or str(err)
        if isinstance(err, FileNotFoundError) and "/" not in argv[0]:
            why = "executable file not found in $PATH"
        message = (f'failed to create containerd task: failed to create shim task: OCI runtime create failed: '
                   f'exec: "{argv[0] if argv else ""}": {why}: unknown')
        state = _terminated(128, "StartError", now, now, message=message)
        on_failure = pod["spec"].get("restartPolicy") == "OnFailure"
        return self._write_status(pod, pod_status(pod, now, "Running" if on_failure else "Failed", state,
                                                  restarts, last_state))

    def _write_status(self, pod, status):
        if pod.get("status") == status:
            return pod
        return self.store.update(POD, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                 {"status": status}, subresource="status")

    # -- exits

    def _wait(self, proc):
        """The waiter thread of one process: report its exit in the pod's status (unless the
        controller, the kill endpoint or a deletion saw it first, see current())."""
        code = exit_code(proc.popen.wait())
        try:  # what the command left behind dies with it, as in a container
            os.killpg(proc.popen.pid, signal.SIGKILL)
        except OSError:
            pass
        kill_marked(proc.mark)
        try:
            with self.store.lock:
                self._ended(proc, code, st.now_rfc3339())
        finally:
            proc.done.set()

    def _ended(self, proc, code, now):
        """Write a process's exit into its pod, once. -> the pod, or None."""
        if self.procs.get(proc.uid) is proc:
            del self.procs[proc.uid]
        if proc.ended or proc.deleted:
            return None
        proc.ended = True
        pod = self.store.find(POD, proc.ns, proc.name)
        if pod is None or pod["metadata"]["uid"] != proc.uid:
            return None
        return self._write_status(pod, self._exit_status(proc, pod, code, now))

    def _exit_status(self, proc, pod, code, now):
        state = _terminated(code, "Completed" if code == 0 else "Error", proc.started_at, now, proc.container_id)
        if proc.disruption:
            phase = "Failed"
        elif code == 0:
            phase = "Succeeded"
        else:
            phase = "Running" if pod["spec"].get("restartPolicy") == "OnFailure" else "Failed"
        return pod_status(pod, now, phase, state, proc.restarts, proc.last_state, proc.disruption)

    def current(self, pod, now):
        """The stored pod as its container stands. Its process may have exited while its exit
        is not written yet (the waiter thread first kills what the command left behind, then
        waits for the store lock, which the controller holds for a whole pass): the exit is
        written now, so that whoever acts on the pod (ends its Job, loses it with its node, keeps
        it as it was deleted) sees that it has ended. The caller holds the store lock."""
        proc = self.procs.get(pod["metadata"]["uid"])
        code = None if proc is None or proc.ended or proc.deleted else proc.exited()
        if code is None:
            return pod
        proc.kill()  # what the command left behind dies with it, as in _wait
        return self._ended(proc, code, now) or self.store.find(POD, proc.ns, proc.name) or pod

    # -- killing

    def kill(self, ns, name, disruption=DISRUPTED_BY_KILL):
        """SIGKILL a pod's process group as a node loss would; -> its _Proc, or None when the
        pod has no live process. The pod becomes Failed with DisruptionTarget."""
        with self.store.lock:
            pod = self.store.find(POD, ns, name)
            proc = self.procs.get(pod["metadata"]["uid"]) if pod else None
            if proc is None or proc.ended or proc.deleted:
                return None
            self.current(pod, st.now_rfc3339())
            if proc.ended:  # it has just exited by itself: written as it ended, nothing to lose
                return None
            proc.disruption = disruption
            proc.kill()
            return proc

    def _on_change(self, res, etype, obj):
        """A deleted pod: kill its process, drop its log, leave a tombstone for its Job."""
        if res is not POD or etype != "DELETED":
            return
        meta = obj["metadata"]
        proc = self.procs.get(meta["uid"])
        ended = None  # the pod as it ended, when its process had exited before its deletion
        if proc is not None:
            code = None if proc.ended or proc.deleted else proc.exited()
            if code is not None:
                ended = dict(obj, status=self._exit_status(proc, obj, code, st.now_rfc3339()))
                proc.ended = True
            proc.deleted = True
            proc.kill()
        path = self.logs.pop((meta["namespace"], meta["name"]), None)
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
        owner = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Job"), None)
        if owner and runs_locally(obj):
            if ended is None or _phase(ended) not in ("Succeeded", "Failed"):
                ended = self._tombstone(obj)
            self.tombstones.setdefault(owner["uid"], []).append(ended)

    def _tombstone(self, pod):
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return pod
        now = st.now_rfc3339()
        started = (first_state(pod).get("running") or {}).get("startedAt", now)
        state = _terminated(137, "Error", started, now)
        return dict(pod, status=pod_status(pod, now, "Failed", state, _restarts(pod), None, DISRUPTED_BY_DELETE))

    def take_tombstones(self, job_uid):
        with self.store.lock:
            return self.tombstones.pop(job_uid, [])

    def forget_tombstones(self, keep_uids):
        """Drop the tombstones of jobs that are gone."""
        with self.store.lock:
            for uid in set(self.tombstones) - set(keep_uids):
                del self.tombstones[uid]

    # -- logs, reset and shutdown

    def log_text(self, ns, name, container=None):
        """The output so far (bytes) of the pod's first container; b"" for its other
        containers; None when the pod never ran here."""
        with self.store.lock:
            path = self.logs.get((ns, name))
            pod = self.store.find(POD, ns, name)
        if path is None or pod is None:
            return None
        if container and container != ((pod["spec"].get("containers") or [{}])[0]).get("name"):
            return b""
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def kill_all(self):
        """Kill every process group and forget every pod (a reset)."""
        with self.store.lock:
            for proc in list(self.procs.values()):
                proc.deleted = True
                proc.kill()
            for path in self.logs.values():
                try:
                    os.unlink(path)
                except OSError:
                    pass
            self.logs.clear()
            self.tombstones.clear()

    def shutdown(self):
        """Kill every process group, reap what exits at once, remove the logs."""
        self.kill_all()
        for proc in list(self.procs.values()):
            try:
                proc.popen.wait(timeout=1)
            except (subprocess.TimeoutExpired, OSError):
                pass
        shutil.rmtree(self.log_dir, ignore_errors=True)


def _with_annotation(obj, key, value):
    out = {**obj, "metadata": {**obj["metadata"], "annotations": {**(obj["metadata"].get("annotations") or {}),
                                                                  key: value}}}
    out["metadata"].pop("resourceVersion", None)
    return out
