"""End-to-end tests of the Kubernetes API simulator with the real kubectl.

    python3 -m unittest tests/kube_sim/test_kube_sim.py -v

One simulator per test class (reset before each test through /_sim/reset);
each test gets its own kubeconfig and a fresh KUBECACHEDIR, so every kubectl
run starts from a cold discovery cache, as a runbook's first command would.
"""

import base64
import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "kube_sim.py")
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
PG_BIN = "/usr/lib/postgresql/15/bin"

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: frontend}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - {name: http, containerPort: 8080}
        env:
        - {name: GREETING, value: hello-from-env}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: busybox, command: ["true"]}
"""

FAILING_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {annotations}
    spec:
      restartPolicy: Never
      containers:
      - name: task
        image: busybox
        env: {env}
"""

STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - {name: postgres, image: "postgres:15", ports: [{containerPort: 5432}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


def start_echo_server():
    """A local TCP echo server; returns (port, stop function)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve_one(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def loop():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()
        srv.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1], stop.set


def echo_roundtrip(port, payload, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres():
    """A throwaway PostgreSQL 15 cluster on a free port (TESTING.md recipe); -> (port, stop)."""
    pg = pwd.getpwnam("postgres")
    root = tempfile.mkdtemp(prefix="kube_sim_pg_")
    os.chmod(root, 0o755)
    os.chown(root, pg.pw_uid, pg.pw_gid)
    with open(os.path.join(root, "pw"), "w") as f:
        f.write("secret\n")
    os.chown(os.path.join(root, "pw"), pg.pw_uid, pg.pw_gid)
    data, port = os.path.join(root, "data"), free_port()

    def as_postgres(*argv):
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], cwd=root, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    as_postgres(f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", f"--pwfile={root}/pw", "--auth-local=trust",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N")
    with open(os.path.join(data, "postgresql.conf"), "a") as f:
        f.write(f"listen_addresses='127.0.0.1'\nport={port}\nunix_socket_directories='{root}'\nfsync=off\n")
    as_postgres(f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-w", "start")

    def stop():
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
    return port, stop


class SimProcess:
    """The simulator as a child process on a free port."""

    def __init__(self, workdir):
        self.workdir = workdir
        port_file = os.path.join(workdir, "port")
        self.log_path = os.path.join(workdir, "sim.log")
        self.proc = subprocess.Popen(
            [sys.executable, SIM, "--port", "0", "--port-file", port_file, "--log", self.log_path,
             "--job-duration", "0.4", "--log-bodies"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start; log: {self.log()}")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def request(self, method, path, body=None, headers=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@unittest.skipUnless(os.path.exists(KUBECTL), "kubectl is not installed")
class KubeSimTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="kube_sim_")
        cls.sim = SimProcess(cls.workdir)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.workdir, ignore_errors=True)

    def setUp(self):
        code, _ = self.sim.request("POST", "/_sim/reset")
        self.assertEqual(code, 200)
        self.tmp = tempfile.mkdtemp(prefix="test_", dir=self.workdir)
        kubeconfig = os.path.join(self.tmp, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: sim
  cluster: {{server: "{self.sim.url}"}}
users:
- name: sim
  user: {{}}
contexts:
- name: sim
  context: {{cluster: sim, user: sim, namespace: default}}
current-context: sim
""")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp,
                    "KUBECONFIG": kubeconfig, "KUBECACHEDIR": os.path.join(self.tmp, "cache")}

    def tearDown(self):
        self.sim.request("DELETE", "/_sim/faults")

    # -- helpers

    def kubectl(self, *args, input=None, timeout=60, env=None):
        return subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})})

    def ok(self, *args, **kw):
        r = self.kubectl(*args, **kw)
        self.assertEqual(r.returncode, 0, f"kubectl {' '.join(args)} failed:\n{r.stderr}\n{r.stdout}")
        return r.stdout

    def fails(self, *args, **kw):
        r = self.kubectl(*args, **kw)
        self.assertNotEqual(r.returncode, 0, f"kubectl {' '.join(args)} should have failed:\n{r.stdout}")
        return r

    def get_json(self, *args):
        return json.loads(self.ok("get", *args, "-o", "json"))

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def apply_manifest(self, *extra):
        return self.ok("apply", "-f", self.write("app.yaml", MANIFEST), *extra)

    def wait_until(self, fn, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = fn()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.1)

    def state(self):
        code, body = self.sim.request("GET", "/_sim/state")
        self.assertEqual(code, 200)
        return body

    def settle(self):
        """Wait until the controller has stopped changing things."""
        last = None
        for _ in range(100):
            rv = self.state()["resourceVersion"]
            if rv == last:
                return
            last = rv
            time.sleep(0.5)

    def fault(self, **spec):
        code, body = self.sim.request("POST", "/_sim/faults", spec)
        self.assertEqual(code, 201, body)
        return body

    def pod_names(self, selector):
        return sorted(p["metadata"]["name"] for p in self.get_json("pods", "-l", selector)["items"])

    def annotate_forward(self, pod, port):
        self.ok("annotate", "--overwrite", "pod", pod, f"sim.runbook/forward-to=127.0.0.1:{port}")


class DiscoveryAndApplyTest(KubeSimTestCase):
    def test_version_and_discovery(self):
        out = json.loads(self.ok("version", "-o", "json"))
        self.assertEqual(out["serverVersion"]["minor"], "32")
        self.assertEqual(out["serverVersion"]["gitVersion"], "v1.32.0")
        names = self.ok("api-resources", "-o", "name").split()
        for name in ("deployments.apps", "statefulsets.apps", "jobs.batch", "services", "pods",
                     "persistentvolumeclaims", "configmaps", "secrets", "namespaces", "endpoints"):
            self.assertIn(name, names)

    def test_client_side_apply_creates_then_updates(self):
        out = self.apply_manifest()
        self.assertIn("deployment.apps/web created", out)
        self.assertIn("service/web created", out)
        self.assertIn("job.batch/migrate created", out)
        log = self.sim.log()
        self.assertIn("fieldValidation=Strict", log)  # OpenAPI v3 told kubectl the server validates
        self.settle()
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertIn("kubectl.kubernetes.io/last-applied-configuration", dep["metadata"]["annotations"])
        rv = dep["metadata"]["resourceVersion"]
        out = self.apply_manifest()
        self.assertIn("deployment.apps/web unchanged", out)
        self.assertEqual(self.get_json("deployment", "web")["metadata"]["resourceVersion"], rv)
        self.write("app.yaml", MANIFEST.replace("replicas: 2", "replicas: 3"))
        out = self.ok("apply", "-f", os.path.join(self.tmp, "app.yaml"))
        self.assertIn("deployment.apps/web configured", out)
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertGreater(int(dep["metadata"]["resourceVersion"]), int(rv))
        svc = self.get_json("service", "web")
        self.assertEqual(svc["spec"]["selector"], {"app": "web"})
        self.assertTrue(svc["spec"]["clusterIP"])

    def test_server_side_apply_creates_and_noop_keeps_resource_version(self):
        out = self.apply_manifest("--server-side")
        self.assertEqual(out.count("serverside-applied"), 3)
        self.assertIn("ctype=application/apply-patch+yaml", self.sim.log())
        self.settle()
        rv = self.get_json("deployment", "web")["metadata"]["resourceVersion"]
        self.apply_manifest("--server-side")
        self.assertEqual(self.get_json("deployment", "web")["metadata"]["resourceVersion"], rv)
        self.write("app.yaml", MANIFEST.replace("nginx:1.27", "nginx:1.28"))
        self.ok("apply", "--server-side", "-f", os.path.join(self.tmp, "app.yaml"))
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28")
        self.assertEqual(dep["metadata"]["generation"], 2)

    def test_lease_replace_needs_the_current_resource_version(self):
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "lk"},
                 "spec": {"holderIdentity": "a", "leaseDurationSeconds": 30}}
        made = json.loads(self.ok("create", "-f", "-", "-o", "json", input=json.dumps(lease)))
        self.assertIn("leases.coordination.k8s.io", self.ok("api-resources", "-o", "name").split())
        taken = dict(made, spec={"holderIdentity": "b", "leaseDurationSeconds": 30})
        now = json.loads(self.ok("replace", "-f", "-", "-o", "json", input=json.dumps(taken)))
        self.assertEqual(now["spec"]["holderIdentity"], "b")
        stale = dict(made, spec={"holderIdentity": "c", "leaseDurationSeconds": 30})
        proc = self.kubectl("replace", "-f", "-", input=json.dumps(stale))
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("Conflict", proc.stderr)
        self.assertEqual(self.get_json("lease", "lk")["spec"]["holderIdentity"], "b")
        proc = self.kubectl("create", "-f", "-", input=json.dumps(lease))
        self.assertIn("AlreadyExists", proc.stderr)

    def test_get_missing_object_prints_not_found(self):
        r = self.fails("get", "deployment", "nope", "-o", "json")
        self.assertIn('Error from server (NotFound): deployments.apps "nope" not found', r.stderr)

    def test_create_subcommands_send_protobuf(self):
        self.ok("create", "deployment", "api", "--image=nginx:1", "--replicas=2", "--port=8080")
        self.ok("create", "job", "once", "--image=busybox", "--", "sh", "-c", "echo hi")
        self.ok("create", "service", "clusterip", "api", "--tcp=80:8080")
        self.assertIn("application/vnd.kubernetes.protobuf", self.sim.log())
        dep = self.get_json("deployment", "api")
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["ports"], [{"containerPort": 8080,
                                                                                      "protocol": "TCP"}])
        self.ok("rollout", "status", "deployment/api", "--timeout=20s")
        self.ok("wait", "--for=condition=complete", "job/once", "--timeout=20s")
        job = self.get_json("job", "once")
        self.assertEqual(job["spec"]["template"]["spec"]["containers"][0]["command"], ["sh", "-c", "echo hi"])
        svc = self.get_json("service", "api")
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], 8080)
        self.assertEqual(svc["spec"]["selector"], {"app": "api"})

    def test_invalid_object_is_rejected(self):
        bad = MANIFEST.split("---")[0].replace("labels: {app: web, tier: frontend}", "labels: {app: other}")
        r = self.fails("apply", "-f", self.write("bad.yaml", bad))
        self.assertIn("is invalid", r.stderr)
        self.assertIn("`selector` does not match template `labels`", r.stderr)

    def test_immutable_configmap_data_cannot_change(self):
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {x: \"%s\"}\n"
        self.ok("apply", "-f", self.write("frozen.yaml", cm % "1"))
        for extra in ([], ["--dry-run=server"]):
            r = self.fails("apply", "-f", self.write("frozen2.yaml", cm % "2"), *extra)
            self.assertIn("field is immutable when `immutable` is set", r.stderr)
        self.assertEqual(self.get_json("configmap", "frozen")["data"], {"x": "1"})
        self.ok("apply", "-f", self.write("frozen3.yaml", cm % "1"))  # the same: a no-op
        self.ok("delete", "configmap", "frozen")
        self.ok("apply", "-f", self.write("frozen4.yaml", cm % "2"))  # anew: any data
        self.assertEqual(self.get_json("configmap", "frozen")["data"], {"x": "2"})

    def test_namespaces_configmaps_and_secrets(self):
        self.ok("create", "namespace", "team-a")  # protobuf body
        self.ok("create", "configmap", "settings", "-n", "team-a", "--from-literal=mode=fast")
        self.ok("create", "secret", "generic", "creds", "-n", "team-a", "--from-literal=password=s3cret")
        cm = self.get_json("configmap", "settings", "-n", "team-a")
        self.assertEqual(cm["data"], {"mode": "fast"})
        secret = self.get_json("secret", "creds", "-n", "team-a")
        self.assertEqual(base64.b64decode(secret["data"]["password"]), b"s3cret")
        self.ok("apply", "-f", self.write("more.yaml", """\
apiVersion: v1
kind: Secret
metadata: {name: more, namespace: team-a}
stringData: {token: abc}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: scratch, namespace: team-a}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"""))
        self.assertEqual(base64.b64decode(self.get_json("secret", "more", "-n", "team-a")["data"]["token"]), b"abc")
        self.wait_until(lambda: self.get_json("pvc", "scratch", "-n", "team-a").get("status", {}).get("phase")
                        == "Bound", what="PVC bound")
        r = self.fails("apply", "-f", self.write("elsewhere.yaml", """\
apiVersion: v1
kind: ConfigMap
metadata: {name: x, namespace: missing}
data: {a: b}
"""))
        self.assertIn('namespaces "missing" not found', r.stderr)
        self.ok("delete", "namespace", "team-a")
        r = self.fails("get", "configmap", "settings", "-n", "team-a")
        self.assertIn("NotFound", r.stderr)


class WorkloadTest(KubeSimTestCase):
    def test_rollout_status_and_pods_follow_template(self):
        self.apply_manifest()
        out = self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        self.assertIn('deployment "web" successfully rolled out', out)
        pods = self.get_json("pods", "-l", "app=web")["items"]
        self.assertEqual(len(pods), 2)
        for p in pods:
            self.assertRegex(p["metadata"]["name"], r"^web-[a-z0-9]{10}-[0-9]+$")
            self.assertEqual(p["metadata"]["labels"]["tier"], "frontend")
            self.assertEqual(p["status"]["phase"], "Running")
        dep = self.get_json("deployment", "web")
        st = dep["status"]
        self.assertEqual((st["readyReplicas"], st["availableReplicas"], st["updatedReplicas"], st["replicas"]),
                         (2, 2, 2, 2))
        self.assertEqual(st["observedGeneration"], dep["metadata"]["generation"])
        self.assertIn("Available", [c["type"] for c in st["conditions"]])
        # a template change replaces the pods
        self.ok("set", "image", "deployment/web", "web=nginx:1.28")
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        new = self.pod_names("app=web")
        self.assertEqual(len(new), 2)
        self.assertFalse(set(new) & {p["metadata"]["name"] for p in pods})
        # ReplicaSets keep the history; undo brings the first template (and its pod names) back
        sets = {rs["metadata"]["name"]: rs for rs in self.get_json("replicasets")["items"]}
        self.assertEqual(sorted(rs["spec"]["replicas"] for rs in sets.values()), [0, 2])
        self.assertIn("2 ", self.ok("rollout", "history", "deployment/web"))
        self.ok("rollout", "undo", "deployment/web")
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        self.assertEqual(self.pod_names("app=web"), sorted(p["metadata"]["name"] for p in pods))
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27")
        self.assertEqual(dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3")

    def test_scale_up_down_to_zero(self):
        self.apply_manifest()
        out = self.ok("scale", "deployment/web", "--replicas=4")
        self.assertIn("deployment.apps/web scaled", out)
        self.wait_until(lambda: len(self.pod_names("app=web")) == 4, what="4 pods")
        self.wait_until(lambda: self.get_json("deployment", "web")["status"].get("readyReplicas") == 4,
                        what="4 ready replicas")
        self.ok("scale", "deployment/web", "--replicas=0")
        self.wait_until(lambda: self.pod_names("app=web") == [], what="no pods")
        status = self.get_json("deployment", "web")["status"]
        self.assertNotIn("readyReplicas", status)
        code, scale = self.sim.request("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")
        self.assertEqual((code, scale["kind"], scale["apiVersion"]), (200, "Scale", "autoscaling/v1"))
        self.assertEqual(scale["spec"]["replicas"], 0)
        self.assertEqual(scale["status"]["selector"], "app=web")
        code, scale = self.sim.request("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                       {**scale, "spec": {"replicas": 1}})
        self.assertEqual((code, scale["spec"]["replicas"]), (200, 1))
        code, err = self.sim.request("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                     {**scale, "metadata": {**scale["metadata"], "resourceVersion": "1"}})
        self.assertEqual((code, err["reason"]), (409, "Conflict"))

    def test_statefulset_pods_claims_and_rollout(self):
        self.ok("apply", "-f", self.write("sts.yaml", STATEFULSET))
        out = self.ok("rollout", "status", "statefulset/db", "--timeout=20s")
        self.assertIn("complete", out)
        self.assertEqual(self.pod_names("app=db"), ["db-0", "db-1"])
        claims = sorted(c["metadata"]["name"] for c in self.get_json("pvc")["items"])
        self.assertEqual(claims, ["data-db-0", "data-db-1"])
        self.ok("scale", "statefulset/db", "--replicas=3")
        self.wait_until(lambda: self.pod_names("app=db") == ["db-0", "db-1", "db-2"], what="db-2")

    def test_get_pods_by_label_and_endpoints(self):
        self.apply_manifest()
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        pods = self.get_json("pods", "-l", "app=web")["items"]
        self.assertEqual(len(pods), 2)
        self.assertEqual(self.get_json("pods", "-l", "app=nothing")["items"], [])
        self.assertEqual(len(self.get_json("pods", "-l", "app in (web,other),tier!=backend")["items"]), 2)
        self.assertEqual(len(self.get_json("pods", "--field-selector", f"metadata.name={pods[0]['metadata']['name']}")
                             ["items"]), 1)

        def endpoint_ips():
            code, ep = self.sim.request("GET", "/api/v1/namespaces/default/endpoints/web")
            if code != 200 or not ep.get("subsets"):
                return None
            return ep
        ep = self.wait_until(endpoint_ips, what="endpoints")
        self.assertEqual(sorted(a["ip"] for a in ep["subsets"][0]["addresses"]),
                         sorted(p["status"]["podIP"] for p in pods))
        self.assertEqual(ep["subsets"][0]["ports"], [{"port": 8080, "protocol": "TCP", "name": "http"}])
        self.ok("scale", "deployment/web", "--replicas=0")
        self.wait_until(lambda: not (endpoint_ips() or {}).get("subsets"), what="empty endpoints")

    def test_pods_that_never_become_ready(self):
        stuck = MANIFEST.split("---")[0].replace("labels: {app: web, tier: frontend}",
                                                 "labels: {app: web, tier: frontend}\n"
                                                 "      annotations: {sim.runbook/ready: \"false\"}")
        self.ok("apply", "-f", self.write("stuck.yaml", stuck))
        r = self.fails("rollout", "status", "deployment/web", "--timeout=2s")
        self.assertIn("timed out", r.stderr)
        r = self.fails("wait", "--for=condition=available", "deployment/web", "--timeout=1s")
        self.assertIn("timed out waiting for the condition", r.stderr)
        pods = self.get_json("pods", "-l", "app=web")["items"]
        self.assertEqual([p["status"]["phase"] for p in pods], ["Running", "Running"])

    def test_plain_get_describe_and_logs(self):
        self.apply_manifest()
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        out = self.ok("get", "deployments")
        self.assertRegex(out, r"NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE")
        self.assertRegex(out, r"web\s+2/2\s+2\s+2\s+")
        self.assertIn("Running", self.ok("get", "pods", "-l", "app=web"))
        self.assertIn("NewReplicaSetAvailable", self.ok("describe", "deployment", "web"))
        pod = self.pod_names("app=web")[0]
        self.ok("annotate", "pod", pod, "sim.runbook/logs=line one")
        self.assertEqual(self.ok("logs", pod).strip(), "line one")

    def test_wait_for_job_complete(self):
        self.apply_manifest()
        out = self.ok("wait", "--for=condition=complete", "job/migrate", "--timeout=20s")
        self.assertIn("job.batch/migrate condition met", out)
        job = self.get_json("job", "migrate")
        self.assertEqual(job["status"]["succeeded"], 1)
        pods = self.get_json("pods", "-l", "job-name=migrate")["items"]
        self.assertEqual([p["status"]["phase"] for p in pods], ["Succeeded"])

    def test_failing_jobs(self):
        by_annotation = FAILING_JOB.format(name="bad-ann", annotations='{"sim.runbook/job-result": "fail"}',
                                           env="[]")
        by_env = FAILING_JOB.format(name="bad-env", annotations="{}",
                                    env='[{"name": "SIM_JOB_RESULT", "value": "fail"}]')
        self.ok("apply", "-f", self.write("jobs.yaml", by_annotation + "---\n" + by_env))
        for name in ("bad-ann", "bad-env"):
            self.ok("wait", "--for=condition=failed", f"job/{name}", "--timeout=20s")
            job = self.get_json("job", name)
            self.assertEqual(job["status"]["failed"], 1)
            self.assertNotIn("succeeded", job["status"])
        started = time.monotonic()
        r = self.fails("wait", "--for=condition=complete", "job/bad-ann", "--timeout=2s")
        self.assertIn("timed out waiting for the condition", r.stderr)
        self.assertLess(time.monotonic() - started, 15)

    def test_delete_waits_for_404_and_cascades(self):
        self.apply_manifest()
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        out = self.ok("delete", "deployment", "web", "--timeout=20s")
        self.assertIn('deployment.apps "web" deleted', out)
        log = self.sim.log()
        self.assertIn('"propagationPolicy":"Background"', log)
        after_delete = log[log.rindex("DELETE /apis/apps/v1/namespaces/default/deployments/web"):]
        self.assertIn("GET /apis/apps/v1/namespaces/default/deployments/web -> 404", after_delete)
        r = self.fails("get", "deployment", "web")
        self.assertIn("NotFound", r.stderr)
        self.wait_until(lambda: self.pod_names("app=web") == [], what="pods garbage-collected")
        r = self.fails("delete", "deployment", "web")
        self.assertIn('deployments.apps "web" not found', r.stderr)


def local_job(name, command, env=None, backoff_limit=6, restart="Never", **spec):
    """A Job manifest (JSON) whose pod runs `command` as a local process of the simulator."""
    container = {"name": "task", "image": "busybox", "command": command}
    if env:
        container["env"] = env
    return json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, **spec, "template": {
            "metadata": {"annotations": {"sim.runbook/run": "local"}},
            "spec": {"restartPolicy": restart, "containers": [container]}}}})


def process_gone(pid):
    """True when the process has exited (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class LocalJobTest(KubeSimTestCase):
    """Jobs with `sim.runbook/run: local`: each pod runs its container's command here."""

    def run_job(self, manifest):
        self.ok("apply", "-f", self.write("job.json", manifest))

    def pods(self, job):
        items = self.get_json("pods", "-l", f"job-name={job}")["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["resourceVersion"])

    def running_pod(self, job, other_than=()):
        """The job's Running pod (waiting for it), not one of `other_than`."""
        def find():
            return next((p for p in self.pods(job) if p["status"].get("phase") == "Running"
                         and p["metadata"]["name"] not in other_than), None)
        return self.wait_until(find, what=f"a running pod of job {job}")

    def kill(self, pod):
        return self.sim.request("POST", f"/_sim/pods/default/{pod}/kill")

    def test_command_runs_and_succeeds(self):
        self.run_job(local_job("hi", ["sh", "-c", "echo hi; exit 0"]))
        self.ok("wait", "--for=condition=complete", "job/hi", "--timeout=10s")
        job = self.get_json("job", "hi")
        self.assertEqual(job["status"]["succeeded"], 1)
        self.assertEqual([c["type"] for c in job["status"]["conditions"]], ["SuccessCriteriaMet", "Complete"])
        self.assertIn("completionTime", job["status"])
        [pod] = self.pods("hi")
        self.assertEqual(pod["status"]["phase"], "Succeeded")
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((terminated["exitCode"], terminated["reason"]), (0, "Completed"))
        self.assertTrue(process_gone(int(pod["metadata"]["annotations"]["sim.runbook/pid"])))
        self.assertEqual(self.ok("logs", pod["metadata"]["name"]), "hi\n")
        self.assertEqual(self.ok("logs", "job/hi"), "hi\n")

    def test_env_from_secret_configmap_and_field_refs(self):
        self.ok("create", "secret", "generic", "creds", "--from-literal=b=y")  # data, base64
        self.ok("apply", "-f", self.write("src.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: more}\n"
                                                       "stringData: {a: x}\n---\napiVersion: v1\n"
                                                       "kind: ConfigMap\nmetadata: {name: cfg}\ndata: {c: z}\n"))
        env = [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "more", "key": "a"}}},
               {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b"}}},
               {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "c"}}},
               {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
               {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
               {"name": "JOB", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}},
               {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
               {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
               {"name": "AB", "value": "$(A)-$(B)"}]
        self.run_job(local_job("envs", ["env"], env))  # no shell: `env` prints exactly what it got
        self.ok("wait", "--for=condition=complete", "job/envs", "--timeout=10s")
        [pod] = self.pods("envs")
        got = dict(line.split("=", 1) for line in self.ok("logs", pod["metadata"]["name"]).splitlines())
        self.assertEqual({k: got.get(k) for k in ("A", "B", "C", "NS", "JOB", "NODE", "AB")},
                         {"A": "x", "B": "y", "C": "z", "NS": "default", "JOB": "envs", "NODE": "sim-node",
                          "AB": "x-y"})
        self.assertEqual((got["POD"], got["IP"]), (pod["metadata"]["name"], pod["status"]["podIP"]))
        self.assertLessEqual(set(got) - {"A", "B", "C", "POD", "NS", "JOB", "NODE", "IP", "AB"},
                             {"PATH", "HOME", "LANG", "TMPDIR", "SIM_CONTAINER"})  # nothing else leaks

    def test_missing_secret_keeps_pod_pending_until_it_exists(self):
        env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}]
        self.run_job(local_job("waits", ["sh", "-c", 'test "$K" = v'], env))
        pod = self.wait_until(lambda: next(iter(self.pods("waits")), None), what="the pod")
        self.assertEqual(pod["status"]["phase"], "Pending")
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        self.assertEqual(waiting, {"reason": "CreateContainerConfigError", "message": 'secret "later" not found'})
        self.assertIn("CreateContainerConfigError", self.ok("get", "pods", "-l", "job-name=waits"))
        self.ok("create", "secret", "generic", "later", "--from-literal=k=v")
        self.ok("wait", "--for=condition=complete", "job/waits", "--timeout=10s")
        self.assertEqual([p["status"]["phase"] for p in self.pods("waits")], ["Succeeded"])

    def test_failing_command_is_retried_up_to_the_backoff_limit(self):
        self.run_job(local_job("flaky", ["sh", "-c", "echo try; exit 3"], backoff_limit=2))
        self.ok("wait", "--for=condition=failed", "job/flaky", "--timeout=10s")
        job = self.get_json("job", "flaky")
        self.assertEqual(job["status"]["failed"], 3)
        self.assertEqual([(c["type"], c["reason"]) for c in job["status"]["conditions"]],
                         [("FailureTarget", "BackoffLimitExceeded"), ("Failed", "BackoffLimitExceeded")])
        pods = self.pods("flaky")
        self.assertEqual(len({p["metadata"]["name"] for p in pods}), 3)
        for p in pods:
            self.assertEqual(p["status"]["phase"], "Failed")
            self.assertEqual(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 3)
            self.assertEqual(p["metadata"]["labels"]["batch.kubernetes.io/job-name"], "flaky")
            self.assertEqual(p["metadata"]["labels"]["controller-uid"], job["metadata"]["uid"])
        self.settle()
        self.assertEqual(len(self.pods("flaky")), 3)  # no more pods once failed

    def test_pod_failure_policy_fail_job_on_exit_code(self):
        policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}
        self.run_job(local_job("fatal", ["sh", "-c", "exit 3"], podFailurePolicy=policy))
        self.ok("wait", "--for=condition=failed", "job/fatal", "--timeout=10s")
        job = self.get_json("job", "fatal")
        failed = job["status"]["conditions"][-1]
        self.assertEqual((failed["type"], failed["reason"]), ("Failed", "PodFailurePolicy"))
        self.assertRegex(failed["message"], r"Container task for pod default/fatal-\w{5} failed with exit code 3 "
                                            r"matching FailJob rule at index 0")
        self.assertEqual((job["status"]["failed"], len(self.pods("fatal"))), (1, 1))

    def test_killed_pod_is_replaced_and_ignored_by_policy(self):
        policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
        self.run_job(local_job("long", ["sleep", "60"], backoff_limit=0, podFailurePolicy=policy))
        first = self.running_pod("long")
        pid = int(first["metadata"]["annotations"]["sim.runbook/pid"])
        self.assertFalse(process_gone(pid))
        code, body = self.kill(first["metadata"]["name"])
        self.assertEqual((code, body["pid"]), (200, pid))
        self.wait_until(lambda: process_gone(pid), what="the killed process to go")
        killed = self.get_json("pod", first["metadata"]["name"])
        self.assertEqual(killed["status"]["phase"], "Failed")
        self.assertEqual(killed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 137)
        self.assertIn(("DisruptionTarget", "True"), [(c["type"], c["status"]) for c in killed["status"]["conditions"]])
        second = self.running_pod("long", other_than={first["metadata"]["name"]})
        self.assertNotIn("failed", self.get_json("job", "long")["status"])  # ignored, so backoffLimit 0 holds
        self.assertEqual(self.kill(first["metadata"]["name"])[0], 404)  # no process any more
        self.assertEqual(self.kill("nosuchpod")[0], 404)
        # kubectl delete pod: the process is killed and the pod replaced, still not counted
        self.ok("delete", "pod", second["metadata"]["name"])
        self.wait_until(lambda: process_gone(int(second["metadata"]["annotations"]["sim.runbook/pid"])),
                        what="the deleted pod's process to go")
        third = self.running_pod("long", other_than={first["metadata"]["name"], second["metadata"]["name"]})
        self.assertNotIn("failed", self.get_json("job", "long")["status"])
        # kubectl delete job: its processes are killed, its pods removed
        self.ok("delete", "job", "long")
        self.wait_until(lambda: process_gone(int(third["metadata"]["annotations"]["sim.runbook/pid"])),
                        what="the job's process to go")
        self.wait_until(lambda: self.pods("long") == [], what="the job's pods to go")

    def test_kill_takes_the_whole_container(self):
        # A child in a session of its own, as a process group leader is, dies with the container.
        pidfile = os.path.join(self.tmp, "child.pid")
        self.run_job(local_job("tree", ["sh", "-c", f"setsid sleep 60 & echo $! > {pidfile}; sleep 60"],
                               backoff_limit=0))
        pod = self.running_pod("tree")
        child = int(self.wait_until(lambda: open(pidfile).read().strip() if os.path.exists(pidfile) else None,
                                    what="the child's pid"))
        self.assertFalse(process_gone(child))
        self.kill(pod["metadata"]["name"])
        self.wait_until(lambda: process_gone(child), what="the container's other process gone")

    def test_killed_pods_count_against_backoff_limit(self):
        self.run_job(local_job("fragile", ["sleep", "60"], backoff_limit=1))
        first = self.running_pod("fragile")
        self.assertEqual(self.kill(first["metadata"]["name"])[0], 200)
        second = self.running_pod("fragile", other_than={first["metadata"]["name"]})
        self.assertEqual(self.get_json("job", "fragile")["status"]["failed"], 1)
        self.assertEqual(self.kill(second["metadata"]["name"])[0], 200)
        self.ok("wait", "--for=condition=failed", "job/fragile", "--timeout=10s")
        self.assertEqual(self.get_json("job", "fragile")["status"]["failed"], 2)
        self.assertEqual(len(self.pods("fragile")), 2)

    def test_lost_pod_and_its_succeeded_replacement_both_stay(self):
        # A fleet's Job: its pod lost with its node is replaced, the replacement succeeds; both
        # pods stay, as on a real cluster (another Job ends meanwhile).
        policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                            {"action": "FailJob", "onExitCodes": {"containerName": "task", "operator": "In",
                                                                  "values": [1, 2, 3, 4, 5, 6, 70]}}]}
        self.run_job(local_job("slow", ["sh", "-c", "sleep 1.5; exit 0"], podFailurePolicy=policy))
        self.run_job(local_job("quick", ["sh", "-c", "exit 0"], podFailurePolicy=policy))
        first = self.running_pod("slow")
        self.assertEqual(self.kill(first["metadata"]["name"])[0], 200)
        self.ok("wait", "--for=condition=complete", "job/slow", "job/quick", "--timeout=15s")
        self.assertEqual(self.get_json("job", "slow")["status"].get("succeeded"), 1)

        def outcome(p):
            state = p["status"]["containerStatuses"][0]["state"]["terminated"]
            return (p["status"]["phase"], state["exitCode"],
                    any(c["type"] == "DisruptionTarget" for c in p["status"]["conditions"]))
        pods = self.pods("slow")
        self.assertEqual(sorted(outcome(p) for p in pods), [("Failed", 137, True), ("Succeeded", 0, False)])
        self.assertIn(first["metadata"]["name"], [p["metadata"]["name"] for p in pods])

    def test_on_failure_restarts_the_same_pod(self):
        marker = os.path.join(self.tmp, "marker")
        script = f'test -e {marker} && echo second && exit 0; touch {marker}; echo first; exit 1'
        self.run_job(local_job("again", ["sh", "-c", script], restart="OnFailure"))
        self.ok("wait", "--for=condition=complete", "job/again", "--timeout=10s")
        [pod] = self.pods("again")
        status = pod["status"]["containerStatuses"][0]
        self.assertEqual((pod["status"]["phase"], status["restartCount"]), ("Succeeded", 1))
        self.assertEqual(status["lastState"]["terminated"]["exitCode"], 1)
        self.assertEqual(self.ok("logs", pod["metadata"]["name"]), "first\nsecond\n")
        self.assertNotIn("failed", self.get_json("job", "again")["status"])

    def test_simulator_shutdown_kills_local_processes(self):
        sim = SimProcess(tempfile.mkdtemp(prefix="own_sim_", dir=self.tmp))
        try:
            code, _ = sim.request("POST", "/apis/batch/v1/namespaces/default/jobs",
                                  json.loads(local_job("bg", ["sleep", "60"])))
            self.assertEqual(code, 201)

            def pid():
                pods = sim.request("GET", "/api/v1/namespaces/default/pods")[1]["items"]
                return next((int(p["metadata"]["annotations"]["sim.runbook/pid"]) for p in pods
                             if "sim.runbook/pid" in p["metadata"].get("annotations", {})), None)
            child = self.wait_until(pid, what="the job's process")
            self.assertFalse(process_gone(child))
        finally:
            sim.stop()  # SIGTERM
        self.wait_until(lambda: process_gone(child), timeout=5, what="the process to die with the simulator")


class LocalPodRaceTest(unittest.TestCase):
    """The job controller and the kubelet of run-local pods in this process, driven one pass at
    a time, with the waiter threads of the pods' processes held where a loaded machine may hold
    them: after the process has exited, before its exit is written (the waiter waits for the
    store lock while the controller reconciles). A pod that has ended is never deleted for its
    Job's end, nor killed as a node loss; a pod deleted then is remembered as it ended."""

    def setUp(self):
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        import controller
        import local_pods
        import store
        from resources import BY_KEY
        self.JOB, self.POD = BY_KEY["batch/jobs"], BY_KEY["/pods"]
        self.store = store.Store()

        class Manual(controller.Controller):
            def _run(self):  # no controller thread: the test runs each pass
                pass
        self.ctl = Manual(self.store)
        self.kubelet = self.ctl.kubelet
        self.tmp = tempfile.mkdtemp(prefix="kube_sim_race_")
        self.hold = False  # hold the waiter threads of the pods started from now on
        self.gates, self.arrived, gate_lock = {}, {}, threading.Lock()

        def gate(name):
            with gate_lock:
                return (self.gates.setdefault(name, threading.Event()),
                        self.arrived.setdefault(name, threading.Event()))
        self.gate = gate
        real = local_pods.kill_marked

        def kill_marked(mark):  # a waiter thread calls it once its process has exited
            name = threading.current_thread().name
            if name.startswith("wait-") and self.hold:
                release, arrived = gate(name[len("wait-"):])
                arrived.set()
                release.wait(10)
            real(mark)
        local_pods.kill_marked = kill_marked
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.kubelet.shutdown)
        self.addCleanup(lambda: [g.set() for g in list(self.gates.values())])
        self.addCleanup(setattr, local_pods, "kill_marked", real)

    def reconcile(self):
        with self.store.lock:
            self.ctl.reconcile()

    def create_job(self, manifest):
        self.store.create(self.JOB, "default", json.loads(manifest))
        self.reconcile()

    def job(self, name):
        return self.store.find(self.JOB, "default", name)

    def pods(self, job):
        return {p["metadata"]["name"]: p for p in self.store.list(self.POD, "default", f"job-name={job}")[0]}

    def proc(self, pod):
        return next(p for p in list(self.kubelet.procs.values()) if p.name == pod)

    def exited_and_held(self, pod):
        """The pod's process, once it has exited and its waiter is held before writing it."""
        proc = self.proc(pod)
        self.assertTrue(self.gate(pod)[1].wait(10), f"the waiter of {pod} was not held")
        self.assertIsNotNone(proc.popen.returncode)
        return proc

    def release(self, proc):
        self.gate(proc.name)[0].set()
        self.assertTrue(proc.done.wait(10))

    @staticmethod
    def outcome(pod):
        status = pod["status"]
        state = status["containerStatuses"][0]["state"]
        return (status["phase"], (state.get("terminated") or {}).get("exitCode"),
                any(c["type"] == "DisruptionTarget" for c in status.get("conditions") or []))

    def test_pod_that_ended_is_kept_and_counted_when_its_job_fails(self):
        # Two pods at once: one exits 0 (its exit not yet written), the other exits 3, which
        # fails the Job (FailJob). The first has ended: it stays Succeeded and counts as such.
        marker = os.path.join(self.tmp, "first")
        policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}
        self.hold = True
        self.create_job(local_job("pair", ["sh", "-c", f"mkdir {marker} 2>/dev/null && exit 0; sleep 0.3; exit 3"],
                                  completions=2, parallelism=2, podFailurePolicy=policy))
        names = sorted(self.pods("pair"))
        self.assertEqual(len(names), 2)
        procs = [self.exited_and_held(n) for n in names]
        ok = next(p for p in procs if p.popen.returncode == 0)
        bad = next(p for p in procs if p.popen.returncode == 3)
        self.release(bad)  # its exit is written; the other waiter still waits
        self.reconcile()
        job = self.job("pair")
        self.assertEqual(job["status"]["conditions"][-1]["reason"], "PodFailurePolicy")
        self.assertEqual((job["status"].get("succeeded"), job["status"].get("failed")), (1, 1))
        pods = self.pods("pair")
        self.assertEqual({n: self.outcome(p) for n, p in pods.items()},
                         {ok.name: ("Succeeded", 0, False), bad.name: ("Failed", 3, False)})
        self.release(ok)  # the late waiter changes nothing
        self.reconcile()
        self.assertEqual(self.pods("pair"), pods)
        self.assertEqual(self.job("pair")["status"], job["status"])

    def test_running_pod_is_deleted_when_its_job_fails(self):
        # A pod still running when its Job fails is deleted (its process killed) and counted failed.
        marker = os.path.join(self.tmp, "first")
        policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}
        self.create_job(local_job("pair", ["sh", "-c", f"mkdir {marker} 2>/dev/null && exec sleep 60; exit 3"],
                                  completions=2, parallelism=2, podFailurePolicy=policy))
        names = sorted(self.pods("pair"))
        self.assertEqual(len(names), 2)
        procs = {n: self.proc(n) for n in names}
        self.assertTrue(self.wait_for(lambda: any(p.done.is_set() for p in procs.values())))
        self.reconcile()
        job = self.job("pair")
        self.assertEqual(job["status"]["conditions"][-1]["reason"], "PodFailurePolicy")
        self.assertEqual((job["status"].get("succeeded"), job["status"].get("failed")), (None, 2))
        [(name, pod)] = self.pods("pair").items()
        self.assertEqual(self.outcome(pod), ("Failed", 3, False))
        running = next(p for n, p in procs.items() if n != name)
        self.assertTrue(self.wait_for(lambda: process_gone(running.popen.pid)))

    def test_node_loss_of_a_pod_that_ended_changes_nothing(self):
        # The kill endpoint on a pod whose process has just exited: no live process (404), and
        # the pod is written as it ended, not as lost.
        self.hold = True
        self.create_job(local_job("done", ["sh", "-c", "exit 0"]))
        [name] = self.pods("done")
        proc = self.exited_and_held(name)
        self.assertIsNone(self.kubelet.kill("default", name))
        self.assertEqual(self.outcome(self.pods("done")[name]), ("Succeeded", 0, False))
        self.release(proc)
        self.reconcile()
        self.assertEqual(self.job("done")["status"].get("succeeded"), 1)
        self.assertEqual(self.outcome(self.pods("done")[name]), ("Succeeded", 0, False))

    def test_pod_deleted_after_it_ended_counts_as_it_ended(self):
        # kubectl delete pod on a pod whose process has just exited 0: the Job counts a success
        # (no replacement), not a pod lost with exit code 137.
        self.hold = True
        self.create_job(local_job("gone", ["sh", "-c", "exit 0"], backoff_limit=0))
        [name] = self.pods("gone")
        proc = self.exited_and_held(name)
        self.store.delete(self.POD, "default", name)
        self.release(proc)
        self.reconcile()
        status = self.job("gone")["status"]
        self.assertEqual((status.get("succeeded"), status.get("failed")), (1, None))
        self.assertEqual(status["conditions"][-1]["type"], "Complete")
        self.assertEqual(self.pods("gone"), {})

    @staticmethod
    def wait_for(fn, timeout=10):
        deadline = time.monotonic() + timeout
        while not fn():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


class PatchAndDryRunTest(KubeSimTestCase):
    def test_patch_types(self):
        self.apply_manifest()
        self.settle()
        rv = self.get_json("deployment", "web")["metadata"]["resourceVersion"]
        out = self.ok("patch", "deployment", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"team":"x"}}}')
        self.assertIn("patched", out)
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["metadata"]["labels"], {"app": "web", "team": "x"})
        rv2 = dep["metadata"]["resourceVersion"]
        self.assertNotEqual(rv, rv2)
        out = self.ok("patch", "deployment", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"team":"x"}}}')
        self.assertIn("(no change)", out)
        self.assertEqual(self.get_json("deployment", "web")["metadata"]["resourceVersion"], rv2)
        self.ok("patch", "deployment", "web", "--type", "json",
                "-p", '[{"op":"replace","path":"/spec/replicas","value":3},'
                      '{"op":"remove","path":"/metadata/labels/team"}]')
        dep = self.get_json("deployment", "web")
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertNotIn("team", dep["metadata"]["labels"])
        r = self.fails("patch", "deployment", "web", "--type", "json",
                       "-p", '[{"op":"test","path":"/spec/replicas","value":9}]')
        self.assertIn("testing value /spec/replicas failed", r.stderr)
        # strategic: containers and env merge by name, other lists replace
        self.ok("patch", "deployment", "web", "--type", "strategic", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [
                {"name": "web", "env": [{"name": "EXTRA", "value": "1"}]},
                {"name": "sidecar", "image": "busybox"}]}}}}))
        containers = self.get_json("deployment", "web")["spec"]["template"]["spec"]["containers"]
        self.assertEqual([c["name"] for c in containers], ["web", "sidecar"])
        self.assertEqual([e["name"] for e in containers[0]["env"]], ["GREETING", "EXTRA"])
        self.assertEqual(containers[0]["image"], "nginx:1.27")
        self.ok("patch", "deployment", "web", "--type", "strategic", "-p", json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}))
        containers = self.get_json("deployment", "web")["spec"]["template"]["spec"]["containers"]
        self.assertEqual([c["name"] for c in containers], ["web"])
        r = self.fails("patch", "deployment", "missing", "--type", "merge", "-p", "{}")
        self.assertIn('deployments.apps "missing" not found', r.stderr)

    def test_dry_run_server_persists_nothing(self):
        self.apply_manifest()
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        self.ok("wait", "--for=condition=complete", "job/migrate", "--timeout=20s")
        self.settle()
        before = self.state()
        changed = MANIFEST.replace("replicas: 2", "replicas: 5")
        changed += "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: brand-new}\ndata: {a: b}\n"
        path = self.write("changed.yaml", changed)
        out = self.ok("apply", "-f", path, "--dry-run=server")
        self.assertIn("configured (server dry run)", out)
        self.assertIn("configmap/brand-new created (server dry run)", out)
        self.ok("apply", "--server-side", "-f", path, "--dry-run=server")
        out = self.ok("scale", "deployment/web", "--replicas=7", "--dry-run=server")
        self.assertIn("scaled (server dry run)", out)
        self.ok("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":9}}',
                "--dry-run=server")
        out = self.ok("delete", "deployment", "web", "--dry-run=server")
        self.assertIn("(server dry run)", out)
        time.sleep(0.3)  # the controller would act on a stray write by now
        self.assertEqual(self.state(), before)
        self.assertEqual(self.get_json("deployment", "web")["spec"]["replicas"], 2)
        self.assertIn("dryRun=All", self.sim.log())


class StreamsTest(KubeSimTestCase):
    def running_pod(self):
        self.apply_manifest()
        self.ok("rollout", "status", "deployment/web", "--timeout=20s")
        return self.pod_names("app=web")[0]

    def test_exec_stdout_stderr_exit_codes_stdin(self):
        pod = self.running_pod()
        self.assertEqual(self.ok("exec", pod, "--", "echo", "hi"), "hi\n")
        r = self.kubectl("exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual((r.returncode, r.stdout), (3, "out\n"))
        self.assertIn("err\n", r.stderr)
        self.assertIn("command terminated with exit code 3", r.stderr)
        self.assertEqual(self.ok("exec", "-i", pod, "--", "tr", "a-z", "A-Z", input="shout\n"), "SHOUT\n")
        self.assertEqual(self.ok("exec", pod, "-c", "web", "--", "printenv", "GREETING"), "hello-from-env\n")
        r = self.kubectl("exec", pod, "--", "no-such-binary-here")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no-such-binary-here", r.stderr)
        r = self.kubectl("exec", "deploy/web", "--", "sh", "-c", "exit 7")
        self.assertEqual(r.returncode, 7)
        self.assertIn("websocket v5.channel.k8s.io", self.sim.log())

    def test_exec_over_spdy_fallback(self):
        pod = self.running_pod()
        spdy = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
        self.assertEqual(self.ok("exec", pod, "--", "echo", "hi", env=spdy), "hi\n")
        r = self.kubectl("exec", pod, "--", "sh", "-c", "echo e >&2; exit 4", env=spdy)
        self.assertEqual(r.returncode, 4)
        self.assertEqual(self.ok("exec", "-i", pod, "--", "cat", input="piped", env=spdy), "piped")
        self.assertIn("over SPDY v4.channel.k8s.io", self.sim.log())

    def port_forward(self, target, remote_port, env=None):
        """Start kubectl port-forward to a free local port; -> (process, local port)."""
        proc = subprocess.Popen([KUBECTL, "port-forward", target, f"0:{remote_port}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**self.env, **(env or {})})
        self.addCleanup(lambda: (proc.kill(), proc.communicate()))
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        self.assertIn("Forwarding from 127.0.0.1:", line, proc.stderr.read() if not line else line)
        return proc, int(line.split("127.0.0.1:")[1].split()[0])

    def test_port_forward_to_local_echo_server(self):
        pod = self.running_pod()
        echo_port, stop = start_echo_server()
        self.addCleanup(stop)
        self.annotate_forward(pod, echo_port)
        _, local = self.port_forward(f"pod/{pod}", 8080)
        self.assertEqual(echo_roundtrip(local, b"ping through kubectl"), b"ping through kubectl")
        big = os.urandom(300_000)
        self.assertEqual(echo_roundtrip(local, big), big)
        self.assertEqual(echo_roundtrip(local, b"again"), b"again")
        self.assertIn("SPDY/3.1+portforward.k8s.io", self.sim.log())

    def test_port_forward_plain_spdy_and_via_service(self):
        pod = self.running_pod()
        echo_port, stop = start_echo_server()
        self.addCleanup(stop)
        self.annotate_forward(pod, echo_port)
        _, local = self.port_forward(f"pod/{pod}", 8080, env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
        self.assertEqual(echo_roundtrip(local, b"over spdy"), b"over spdy")
        self.assertIn("over SPDY portforward.k8s.io", self.sim.log())
        # every pod of the deployment forwards, so the service's choice does not matter
        for p in self.pod_names("app=web"):
            self.annotate_forward(p, echo_port)
        _, local = self.port_forward("svc/web", 80)
        self.assertEqual(echo_roundtrip(local, b"via service"), b"via service")

    def test_port_forward_without_target_reports_error(self):
        pod = self.running_pod()
        proc, local = self.port_forward(f"pod/{pod}", 8080)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(10)
            try:
                self.assertEqual(s.recv(10), b"")
            except ConnectionResetError:
                pass
        proc.kill()
        self.assertIn("sim.runbook/forward-to", proc.stderr.read())

    def test_websocket_channel_port_forward_protocol(self):
        """The `portforward.k8s.io` websocket protocol, spoken by a tiny client here."""
        pod = self.running_pod()
        echo_port, stop = start_echo_server()
        self.addCleanup(stop)
        self.annotate_forward(pod, echo_port)
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=10)
        self.addCleanup(s.close)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /api/v1/namespaces/default/pods/{pod}/portforward?ports=8080 HTTP/1.1\r\n"
                   f"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: portforward.k8s.io\r\n\r\n").encode())
        f = s.makefile("rb")
        self.assertIn(b"101", f.readline())
        while f.readline() not in (b"\r\n", b""):
            pass

        def recv():
            b0, b1 = f.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", f.read(2))[0]
            return b0 & 0x0F, f.read(n)

        def send(payload):
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            s.sendall(bytes([0x82, 0x80 | len(payload)]) + mask + masked)

        self.assertEqual(recv(), (2, b"\x00\x90\x1f"))  # data channel 0, port 8080 little-endian
        self.assertEqual(recv(), (2, b"\x01\x90\x1f"))  # error channel 1
        send(b"\x00hello channels")
        got = b""
        while len(got) < len(b"hello channels"):
            op, payload = recv()
            self.assertEqual(payload[0], 0)
            got += payload[1:]
        self.assertEqual(got, b"hello channels")


@unittest.skipUnless(os.path.exists(f"{PG_BIN}/initdb") and shutil.which("psql") and os.geteuid() == 0,
                     "needs PostgreSQL 15 (postgresql-15), psql and root")
class PostgresPortForwardTest(KubeSimTestCase):
    def test_psql_through_kubectl_port_forward(self):
        pg_port, stop = start_postgres()
        self.addCleanup(stop)
        self.ok("apply", "-f", self.write("pg.yaml", STATEFULSET.replace(
            "      labels: {app: db}\n    spec:",
            f"      labels: {{app: db}}\n      annotations: {{sim.runbook/forward-to: \"5432=127.0.0.1:{pg_port}\"}}"
            "\n    spec:")))
        self.ok("rollout", "status", "statefulset/db", "--timeout=20s")
        proc = subprocess.Popen([KUBECTL, "port-forward", "pod/db-0", "0:5432"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)
        self.addCleanup(lambda: (proc.kill(), proc.communicate()))
        line = proc.stdout.readline()
        local = int(line.split("127.0.0.1:")[1].split()[0])
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(local), "-U", "postgres", "-tA",
                            "-c", "select 40 + 2", "-c", "copy (select repeat('z', 200) from generate_series(1, 5000))"
                            " to stdout"], capture_output=True, text=True, timeout=30,
                           env={**self.env, "PGPASSWORD": "secret", "PGCONNECT_TIMEOUT": "10"})
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "42")
        self.assertEqual(lines[1:], ["z" * 200] * 5000)


class FaultInjectionTest(KubeSimTestCase):
    def setUp(self):
        super().setUp()
        self.apply_manifest()

    def test_internal_error(self):
        self.fault(match={"method": "GET", "path_regex": "/deployments/web$"}, status=500)
        r = self.fails("get", "deployment", "web")
        self.assertIn("Error from server (InternalError): Internal error occurred: injected fault", r.stderr)
        self.ok("get", "deployment", "web")  # count 1: the next request passes

    def test_conflict_on_patch(self):
        self.fault(match={"method": "PATCH", "path_regex": "/deployments/web"}, status=409, count=2)
        for _ in range(2):
            r = self.fails("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":3}}')
            self.assertIn('Error from server (Conflict): Operation cannot be fulfilled on deployments.apps "web": '
                          "the object has been modified", r.stderr)
        self.ok("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":3}}')
        self.assertEqual(self.get_json("deployment", "web")["spec"]["replicas"], 3)

    def test_slow_response(self):
        self.fault(match={"method": "GET", "path_regex": "/deployments/web"}, delay_ms=2500)
        started = time.monotonic()
        r = self.fails("get", "deployment", "web", "--request-timeout=1s")
        self.assertRegex(r.stderr, "Client.Timeout exceeded|context deadline exceeded")
        self.assertLess(time.monotonic() - started, 2.4)
        self.fault(match={"method": "GET", "path_regex": "/deployments/web"}, delay_ms=800)
        started = time.monotonic()
        self.ok("get", "deployment", "web")
        self.assertGreaterEqual(time.monotonic() - started, 0.8)

    def test_dropped_connection(self):
        self.fault(match={"method": "PATCH", "path_regex": "/deployments/web"}, drop=True)
        r = self.fails("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":3}}')
        self.assertIn("EOF", r.stderr)
        self.assertNotEqual(self.get_json("deployment", "web")["spec"]["replicas"], 3)
        # client-go retries a GET whose connection dropped (up to 10 times, 1 s apart)
        self.fault(match={"method": "GET", "path_regex": r"/deployments/web(\?|$)"}, drop=True, count=1)
        self.ok("get", "deployment", "web")
        self.assertIn("dropped", self.sim.log())

    def test_fault_listing_and_clearing(self):
        self.fault(match={"path_regex": "/services/"}, status=503, count=0, message="maintenance")
        code, body = self.sim.request("GET", "/_sim/faults")
        self.assertEqual((code, len(body["faults"])), (200, 1))
        r = self.fails("get", "service", "web")
        self.assertIn("maintenance", r.stderr)
        self.sim.request("DELETE", "/_sim/faults")
        self.ok("get", "service", "web")


class WatchProtocolTest(KubeSimTestCase):
    """List-then-watch at the HTTP level, as kubectl's informers do it."""

    def watch_lines(self, path, count, timeout=10):
        req = urllib.request.Request(self.sim.url + path)
        lines = []
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            self.assertEqual(resp.headers.get("Transfer-Encoding"), "chunked")
            while len(lines) < count:
                line = resp.readline()
                if not line:
                    break
                lines.append(json.loads(line))
        return lines

    def test_watch_sends_only_newer_events(self):
        self.ok("apply", "-f", self.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
                                                     "data: {k: v1}\n"))
        code, listing = self.sim.request("GET", "/api/v1/namespaces/default/configmaps?fieldSelector="
                                                "metadata.name%3Da")
        rv = listing["metadata"]["resourceVersion"]
        self.assertEqual([i["metadata"]["name"] for i in listing["items"]], ["a"])
        threading.Timer(0.3, lambda: self.ok("patch", "configmap", "a", "--type", "merge",
                                             "-p", '{"data":{"k":"v2"}}')).start()
        events = self.watch_lines(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
                                  "&fieldSelector=metadata.name%3Da", 1)
        self.assertEqual(events[0]["type"], "MODIFIED")
        self.assertEqual(events[0]["object"]["data"], {"k": "v2"})
        self.assertGreater(int(events[0]["object"]["metadata"]["resourceVersion"]), int(rv))
        # from resourceVersion 0: the current state first
        events = self.watch_lines("/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Da", 1)
        self.assertEqual((events[0]["type"], events[0]["object"]["data"]), ("ADDED", {"k": "v2"}))
        # after a reset, an old resourceVersion is gone
        self.sim.request("POST", "/_sim/reset")
        events = self.watch_lines(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}", 1)
        self.assertEqual((events[0]["type"], events[0]["object"]["code"]), ("ERROR", 410))


if __name__ == "__main__":
    unittest.main()
