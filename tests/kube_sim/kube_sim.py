#!/usr/bin/env python3
"""A small stateful Kubernetes API simulator for driving the real kubectl in tests.

    python3 tests/kube_sim/kube_sim.py --port 0 --port-file F [--log FILE]

Binds 127.0.0.1 (a free port with --port 0), writes the port number to F when
it is ready, and serves plain HTTP/1.1 until killed. See README.md beside this
file for the endpoints, the /_sim control API and what is not supported.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pod_streams  # noqa: E402
import resources  # noqa: E402
import tables  # noqa: E402
import store as st  # noqa: E402
import websocket  # noqa: E402
from api import Api, parse_route, wants_table  # noqa: E402
from controller import Controller  # noqa: E402
from faults import Faults  # noqa: E402

WATCH_POLL_S = 0.5
EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
PORTFORWARD_WS_PROTOCOLS = ["SPDY/3.1+portforward.k8s.io", "portforward.k8s.io", "v4.channel.k8s.io"]
NOT_FOUND = object()


class Simulator:
    """The state shared by all request threads."""

    def __init__(self, log, controller_delay, job_duration, log_bodies=False):
        self.store = st.Store()
        self.faults = Faults()
        self.controller = Controller(self.store, controller_delay, job_duration)
        self.api = Api(self.store, pod_log=self.controller.kubelet.log_text)
        self.log_file = log
        self.log_bodies = log_bodies
        self.log_lock = threading.Lock()
        self.generation = 0  # bumped by reset()
        self.store.listeners.append(self._log_pod_deletion)

    def _log_pod_deletion(self, res, etype, obj):
        """Who deleted a pod, and in what phase: a request (its own line follows), or the
        controller (a Job that ended or was suspended, a scale-down, an owner gone)."""
        if res.key == "/pods" and etype == "DELETED":
            by = "the controller" if threading.current_thread() is self.controller.thread else "a request"
            phase = (obj.get("status") or {}).get("phase") or "no phase"
            self.log(f'pod {obj["metadata"].get("namespace")}/{obj["metadata"]["name"]} deleted ({phase}) by {by}')

    def log(self, msg):
        with self.log_lock:
            self.log_file.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
            self.log_file.flush()

    def reset(self):
        # A request a fault delays across a reset belongs to the test before
        # it (a client killed mid-request): it is dropped, not applied to the
        # next test's objects.
        self.generation += 1
        self.faults.clear()
        with self.store.lock:
            self.controller.reset()
            self.store.reset()

    def kill_pod(self, ns, name):
        """A node loss: SIGKILL the pod's process group; -> (code, body) once its status says so."""
        proc = self.controller.kubelet.kill(ns, name)
        if proc is None:
            raise st.ApiError(404, f'pod "{name}" in namespace "{ns}" has no running process')
        proc.done.wait(5)
        return 200, {"killed": True, "namespace": ns, "name": name, "pid": proc.popen.pid, "signal": "SIGKILL"}

    def shutdown(self):
        self.controller.stop()
        self.controller.kubelet.shutdown()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-sim/1.32"
    sim: Simulator = None  # set on the subclass made by serve()

    # -- plumbing

    def log_message(self, fmt, *args):  # the default writes every line to stderr
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Audit-Id", "00000000-0000-0000-0000-000000000000")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.status_code = code

    def _answer_error(self, err):
        """Answer a Status, unless the connection was already upgraded to a stream."""
        if self.status_code == 101:
            self.sim.log(f"error after the upgrade: {err.message}")
            self.close_connection = True
            return
        try:
            self._send(err.code, err.status())
        except OSError:
            self.close_connection = True

    def _dispatch(self):
        self.started = time.monotonic()
        self.status_code = 0
        url = urllib.parse.urlsplit(self.path)
        self.url_path = url.path
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = b""
        try:
            body = self._body()
            if not url.path.startswith("/_sim/") and self._fault():
                return
            self._route(url.path, body)
        except st.ApiError as e:
            self._answer_error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # answer a bug as a Status, and say where it is
            self.sim.log(traceback.format_exc())
            self._answer_error(st.ApiError(500, f"Internal error occurred: simulator: {e!r}"))
        finally:
            ms = (time.monotonic() - self.started) * 1000
            self.sim.log(f"{self.command} {self.path} -> {self.status_code or '-'} ({ms:.0f} ms)"
                         + (f" ctype={self.headers.get('Content-Type')} body={body[:2000]!r}"
                            if self.sim.log_bodies and body else ""))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    # -- faults

    def _fault(self):
        rule = self.sim.faults.take(self.command, self.path)
        if rule is None:
            return False
        self.sim.log(f"fault {rule['id']} hits {self.command} {self.path}")
        if rule["delay_ms"]:
            generation = self.sim.generation
            time.sleep(rule["delay_ms"] / 1000.0)
            if self.sim.generation != generation:
                self.sim.log(f"fault {rule['id']}: {self.command} {self.path} outlived a reset: dropped")
                rule = dict(rule, drop=True)
        if rule["drop"]:
            self.close_connection = True
            self.status_code = "dropped"
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if rule["status"]:
            code = rule["status"]
            route = parse_route(self.url_path)
            if code == 409 and route and route.name and not rule["message"]:
                err = st.conflict(route.res, route.name)
            elif code == 404 and route and route.name and not rule["message"]:
                err = st.not_found(route.res, route.name)
            else:
                default = {500: "Internal error occurred: injected fault"}.get(code, f"injected fault ({code})")
                err = st.ApiError(code, rule["message"] or default, rule["reason"])
            extra = {"Retry-After": "1"} if code == 429 else None
            self._send(code, err.status(), extra=extra)
            return True
        return False

    # -- routing

    def _route(self, path, body):
        method = self.command
        if path.startswith("/_sim/"):
            return self._sim_endpoint(method, path, body)
        if method == "GET":
            static = self._static(path)
            if static is not None:
                return self._send(200, static[0], static[1])
        route = parse_route(path)
        if route is None:
            raise st.ApiError(404, "the server could not find the requested resource")
        if route.sub in ("exec", "portforward"):
            return self._stream(route)
        if method == "GET" and route.name is None and self.query.get("watch", [""])[0] in ("true", "1"):
            return self._watch(route)
        code, obj = self.sim.api.handle(method, route, self.query, body,
                                        (self.headers.get("Content-Type") or "").split(";")[0].strip(),
                                        self.headers.get("Accept", ""))
        if isinstance(obj, bytes):
            return self._send(code, obj, "text/plain")
        ctype = "application/json;as=Table;v=v1;g=meta.k8s.io" if obj.get("kind") == "Table" else "application/json"
        self._send(code, obj, ctype)

    def _static(self, path):
        """Discovery, version, OpenAPI and health: (body, content type), or None for other paths."""
        accept = self.headers.get("Accept", "").replace(" ", "")
        p = path.rstrip("/") or "/"
        parts = p.strip("/").split("/")
        doc = None
        if p == "/version":
            doc = resources.SERVER_VERSION
        elif p in ("/healthz", "/livez", "/readyz"):
            return b"ok", "text/plain"
        elif p in ("/api", "/apis"):
            for version in (resources.AGGREGATED_V2, resources.AGGREGATED_V2BETA1):
                g, v = version.split("/")
                if f"g={g};v={v};as=APIGroupDiscoveryList" in accept:
                    return (resources.aggregated_discovery(p == "/api", version),
                            f"application/json;g={g};v={v};as=APIGroupDiscoveryList")
            doc = resources.api_versions() if p == "/api" else resources.api_group_list()
        elif p == "/api/v1":
            doc = resources.api_resource_list("", "v1")
        elif len(parts) == 2 and parts[0] == "apis":
            doc = resources.api_group(parts[1]) or NOT_FOUND
        elif len(parts) == 3 and parts[0] == "apis":
            doc = resources.api_resource_list(parts[1], parts[2]) or NOT_FOUND
        elif p == "/openapi/v3":
            doc = resources.openapi_root()
        elif p.startswith("/openapi/v3/"):
            doc = resources.OPENAPI_DOCS.get(p[len("/openapi/v3/"):], NOT_FOUND)
        elif p == "/openapi/v2":
            doc = NOT_FOUND
        if doc is NOT_FOUND:
            raise st.ApiError(404, "the server could not find the requested resource")
        return None if doc is None else (doc, "application/json")

    # -- /_sim

    def _sim_endpoint(self, method, path, body):
        sim = self.sim
        if path == "/_sim/state" and method == "GET":
            return self._send(200, sim.store.dump())
        if path == "/_sim/reset" and method == "POST":
            sim.reset()
            return self._send(200, {"reset": True, "resourceVersion": str(sim.store.rv)})
        if path == "/_sim/faults":
            if method == "GET":
                return self._send(200, {"faults": sim.faults.list()})
            if method == "DELETE":
                sim.faults.clear()
                return self._send(200, {"faults": []})
            if method == "POST":
                spec = json.loads(body or b"{}")
                specs = spec if isinstance(spec, list) else [spec]
                added = [sim.faults.add(s) for s in specs]
                return self._send(201, added[0] if not isinstance(spec, list) else {"faults": added})
        m = re.fullmatch(r"/_sim/pods/([^/]+)/([^/]+)/kill", path)
        if m and method == "POST":
            return self._send(*sim.kill_pod(*(urllib.parse.unquote(g) for g in m.groups())))
        raise st.ApiError(404, f"no simulator endpoint {method} {path}")

    # -- watch

    def _client_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return bool(r) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, route):
        res, s = route.res, self.sim.store
        ns = route.ns if res.namespaced else None
        lsel, fsel = self.query.get("labelSelector", [""])[0], self.query.get("fieldSelector", [""])[0]
        lreqs, freqs = st.parse_label_selector(lsel), st.parse_field_selector(fsel)
        rv_text = self.query.get("resourceVersion", [""])[0]
        timeout = float(self.query.get("timeoutSeconds", ["1800"])[0] or 1800)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.status_code = 200
        try:
            as_table = wants_table(self.headers.get("Accept", ""))
            include = self.query.get("includeObject", ["Metadata"])[0]

            def send_event(etype, obj):
                if as_table:
                    obj = tables.to_table(res.kind, [obj], obj["metadata"]["resourceVersion"], include)
                self._chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

            if rv_text in ("", "0"):
                items, rv_text = s.list(res, ns, lsel, fsel)
                for obj in items:
                    send_event("ADDED", obj)
            since = int(rv_text)
            while time.monotonic() < deadline:
                events, reached = s.events_since(since, res, ns, lreqs, freqs)
                if events is None:
                    err = st.ApiError(410, f"too old resource version: {since} ({s.floor})", "Expired")
                    self._chunk(json.dumps({"type": "ERROR", "object": err.status()}).encode() + b"\n")
                    break
                for _, etype, obj in events:
                    send_event(etype, obj)
                since = max(since, reached)
                with s.changed:
                    if s.rv <= since:
                        s.changed.wait(min(WATCH_POLL_S, max(0.0, deadline - time.monotonic())))
                if self._client_gone():
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    # -- exec and port-forward

    def _stream(self, route):
        sim = self.sim
        pod = sim.store.get(route.res, route.ns, route.name)
        self.close_connection = True
        if route.sub == "exec":
            argv = self.query.get("command", [])
            containers = pod["spec"].get("containers") or []
            cname = self.query.get("container", [""])[0]
            container = next((c for c in containers if c.get("name") == cname), None) if cname else \
                (containers[0] if containers else None)
            if container is None:
                raise st.ApiError(400, f"container {cname} is not valid for pod {route.name}")
            if (pod.get("status") or {}).get("phase") != "Running":
                raise st.ApiError(400, f"container {container.get('name')} is not running in pod {route.name}")
            if not argv:
                raise st.ApiError(400, "you must specify at least 1 command")
            want = {k: self.query.get(k, ["false"])[0] in ("true", "1") for k in ("stdin", "stdout", "stderr", "tty")}
        upgrade = self.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            offered = self.headers.get("Sec-WebSocket-Protocol", "")
            choices = EXEC_PROTOCOLS if route.sub == "exec" else PORTFORWARD_WS_PROTOCOLS
            proto = websocket.choose_protocol(offered, choices)
            if proto is None:
                raise st.ApiError(400, f"unsupported websocket subprotocols: {offered!r}")
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", websocket.accept_key(self.headers["Sec-WebSocket-Key"]))
            self.send_header("Sec-WebSocket-Protocol", proto)
            self.end_headers()
            self.wfile.flush()
            self.status_code = 101
            ws = websocket.WebSocket(self.connection, self.rfile)
            sim.log(f"{route.sub} {route.ns}/{route.name} over websocket {proto}")
            if route.sub == "exec":
                pod_streams.ws_exec(ws, argv, container, want, sim.log)
            elif proto.startswith("SPDY/"):
                pod_streams.spdy_portforward(pod_streams.ws_spdy_factory(ws, sim.log), pod, sim.log)
            else:
                ports = [int(p) for v in self.query.get("ports", []) for p in v.split(",") if p.strip()]
                pod_streams.ws_portforward(ws, pod, ports, sim.log)
            return
        if upgrade.startswith("spdy/"):
            offered = [p.strip() for p in self.headers.get_all("X-Stream-Protocol-Version", [])
                       for p in p.split(",")]
            choices = EXEC_PROTOCOLS[1:] if route.sub == "exec" else ["portforward.k8s.io"]
            proto = next((p for p in choices if p in offered), None)
            if proto is None:
                raise st.ApiError(403, f"unsupported stream protocols {offered!r}, supported: {choices!r}")
            self.send_response(101)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "SPDY/3.1")
            self.send_header("X-Stream-Protocol-Version", proto)
            self.end_headers()
            self.wfile.flush()
            self.status_code = 101
            sim.log(f"{route.sub} {route.ns}/{route.name} over SPDY {proto}")
            factory = pod_streams.raw_spdy_factory(self.connection, self.rfile, sim.log)
            if route.sub == "exec":
                pod_streams.spdy_exec(factory, argv, container, want, sim.log)
            else:
                pod_streams.spdy_portforward(factory, pod, sim.log)
            return
        raise st.ApiError(400, "Upgrade request required")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve(host, port, sim):
    handler = type("BoundHandler", (Handler,), {"sim": sim})
    return Server((host, port), handler)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--port-file", help="write the port number here once listening")
    ap.add_argument("--log", help="request log file (default: stderr)")
    ap.add_argument("--log-bodies", action="store_true", help="log request bodies too")
    ap.add_argument("--controller-delay", type=float, default=0.1,
                    help="seconds between a change and the controller acting on it")
    ap.add_argument("--job-duration", type=float, default=0.5, help="seconds a job runs before it ends")
    args = ap.parse_args(argv)
    log = open(args.log, "a", buffering=1) if args.log else sys.stderr
    sim = Simulator(log, args.controller_delay, args.job_duration, args.log_bodies)
    server = serve(args.host, args.port, sim)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    sim.log(f"kube-sim listening on http://{args.host}:{port}")
    signal.signal(signal.SIGTERM, _interrupt)  # so that `finally` kills the local processes
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sim.shutdown()
        server.server_close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
