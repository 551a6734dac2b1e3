"""`pods/exec` and `pods/portforward`, backed by local processes and sockets.

exec runs the requested argv as a local process (no shell; the container's
literal `env` values are added to the environment, `workingDir` is used when
it exists here) and speaks either
  - websocket `v5.channel.k8s.io` / `v4.channel.k8s.io`: every binary message
    starts with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 error (a Status
    JSON: Success, or Failure/NonZeroExitCode with the exit code), 4 resize
    (ignored), 255 close (v5: `[255, 0]` ends stdin); or
  - SPDY (`X-Stream-Protocol-Version: v4.channel.k8s.io`): one stream per
    channel, named by the `streamtype` header.
port-forward connects each forwarded pod port to a real local TCP address
named by the pod annotation `sim.runbook/forward-to` and speaks either
  - SPDY (kubectl 1.32: tunnelled through a websocket, or plain): per
    connection a pair of streams (`streamtype: error|data`, `port`,
    `requestid`); or
  - websocket `portforward.k8s.io` / `v4.channel.k8s.io`: channel 2i carries
    the data and 2i+1 the errors of the i-th port in `?ports=`, and each
    channel begins with the port number as 2 little-endian bytes.
"""

import json
import os
import socket
import struct
import subprocess
import threading

import spdy
from websocket import OP_BINARY, OP_TEXT

ANN_FORWARD = "sim.runbook/forward-to"


# ----------------------------------------------------------------------------
# exec


def exit_status(code, argv):
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {argv}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def spawn_error_status(argv, err):
    return {"metadata": {}, "status": "Failure", "code": 500, "reason": "InternalError",
            "message": "Internal error occurred: error executing command in container: failed to exec in "
                       f'container: OCI runtime exec failed: exec failed: unable to start container process: '
                       f'exec: "{argv[0] if argv else ""}": {err.strerror or err}: unknown',
            "details": {"causes": [{"message": str(err)}]}}


class Process:
    """A local process standing in for a command run in a container."""

    def __init__(self, argv, container, want_stdin, tty):
        self.argv = argv
        self.error = None
        self.proc = None
        env = dict(os.environ)
        for e in (container or {}).get("env") or []:
            if "value" in e and e.get("name"):
                env[e["name"]] = str(e["value"])
        cwd = (container or {}).get("workingDir")
        if not cwd or not os.path.isdir(cwd):
            cwd = None
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if want_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT if tty else subprocess.PIPE,
                env=env, cwd=cwd, start_new_session=True)
        except (OSError, ValueError) as e:
            self.error = e if isinstance(e, OSError) else OSError(str(e))

    def feed(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            pass

    def close_stdin(self):
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass

    def kill(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass

    def run(self, out, err):
        """Pump stdout/stderr into the callbacks until the process ends; -> exit code."""
        def pump(f, sink):
            while True:
                chunk = f.read1(65536) if hasattr(f, "read1") else f.read(65536)
                if not chunk:
                    break
                try:
                    sink(chunk)
                except OSError:
                    pass
        threads = [threading.Thread(target=pump, args=(self.proc.stdout, out), daemon=True)]
        if self.proc.stderr:
            threads.append(threading.Thread(target=pump, args=(self.proc.stderr, err), daemon=True))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        code = self.proc.wait()
        return 128 - code if code < 0 else code


def ws_exec(ws, argv, container, want, log):
    """want: dict of stdin/stdout/stderr/tty booleans."""
    p = Process(argv, container, want["stdin"], want["tty"])
    if p.error:
        log(f"exec {argv}: {p.error}")
        ws.send_binary(b"\x03" + json.dumps(spawn_error_status(argv, p.error)).encode())
        ws.close()
        _drain(ws)
        return

    def reader():
        while True:
            msg = ws.recv()
            if msg is None:
                p.kill()
                return
            op, data = msg
            if op not in (OP_BINARY, OP_TEXT) or not data:
                continue
            if data[0] == 0:
                p.feed(data[1:])
            elif data[0] == 255 and data[1:2] == b"\x00":
                p.close_stdin()

    t = threading.Thread(target=reader, daemon=True)
    t.start()

    def sink(channel, wanted):
        return lambda d: ws.send_binary(bytes([channel]) + d) if wanted else None

    code = p.run(sink(1, want["stdout"]), sink(2, want["stderr"]))
    log(f"exec {argv}: exit {code}")
    try:
        ws.send_binary(b"\x03" + json.dumps(exit_status(code, argv)).encode())
    except OSError:
        pass
    ws.close()
    t.join(timeout=2)


def _drain(ws):
    while ws.recv() is not None:
        pass


def spdy_exec(conn_factory, argv, container, want, log):
    """Exec over SPDY: wait for the client's streams, then run. conn_factory(on_stream) -> Connection."""
    streams = {}
    ready = threading.Event()
    expected = {"error"} | {k for k in ("stdin", "stdout", "stderr") if want[k]}

    def on_stream(stream):
        streams[stream.headers.get("streamtype", "")] = stream
        if expected <= set(streams):
            ready.set()

    conn = conn_factory(on_stream)
    threading.Thread(target=conn.serve, daemon=True).start()
    if not ready.wait(30):
        log("exec: the client did not open its streams")
        return
    p = Process(argv, container, want["stdin"], want["tty"])
    if p.error:
        streams["error"].write(json.dumps(spawn_error_status(argv, p.error)).encode())
        streams["error"].close()
        return
    if want["stdin"]:
        def feeder():
            while True:
                data = streams["stdin"].read()
                if not data:
                    p.close_stdin()
                    return
                p.feed(data)
        threading.Thread(target=feeder, daemon=True).start()

    def sink(name):
        return lambda d: streams[name].write(d) if name in streams else None

    code = p.run(sink("stdout"), sink("stderr"))
    log(f"exec {argv}: exit {code}")
    try:
        for name in ("stdout", "stderr"):
            if name in streams:
                streams[name].close()
        if code != 0:
            streams["error"].write(json.dumps(exit_status(code, argv)).encode())
        streams["error"].close()
    except OSError:
        pass
    conn.closed.wait(5)


# ----------------------------------------------------------------------------
# port-forward


def forward_target(pod, port):
    """(host, port) from the pod's `sim.runbook/forward-to` annotation, or None.

    The value is a comma-separated list of `[containerPort=]host:port`; an
    entry without `containerPort=` applies to every port.
    """
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANN_FORWARD, "")
    fallback = None
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if "=" in entry:
            cport, addr = entry.split("=", 1)
            if cport.strip() == str(port):
                return _split_addr(addr)
        else:
            fallback = _split_addr(entry)
    return fallback


def _split_addr(addr):
    host, _, port = addr.strip().rpartition(":")
    return (host or "127.0.0.1", int(port))


def _connect(pod, port):
    target = forward_target(pod, port)
    name = pod["metadata"]["name"]
    if target is None:
        raise OSError(f"error forwarding port {port} to pod {name}: pod has no {ANN_FORWARD} annotation "
                      f"for port {port}")
    try:
        return socket.create_connection(target, timeout=5)
    except OSError as e:
        raise OSError(f"error forwarding port {port} to pod {name}, uid {pod['metadata'].get('uid')}: "
                      f"failed to connect to {target[0]}:{target[1]}: {e}") from None


def spdy_portforward(conn_factory, pod, log):
    pairs = {}  # requestid -> {"data": stream, "error": stream}
    lock = threading.Lock()

    def on_stream(stream):
        rid = stream.headers.get("requestid", "0")
        with lock:
            pair = pairs.setdefault(rid, {})
            pair[stream.headers.get("streamtype", "")] = stream
            if "data" in pair and "error" in pair:
                del pairs[rid]
                threading.Thread(target=_forward_pair, args=(pod, pair, log), daemon=True).start()

    conn = conn_factory(on_stream)
    conn.serve()


def _forward_pair(pod, pair, log):
    data, error = pair["data"], pair["error"]
    port = int(data.headers.get("port", "0"))
    try:
        sock = _connect(pod, port)
    except OSError as e:
        log(str(e))
        try:
            error.write(str(e).encode())
            error.close()
            data.close()
        except OSError:
            pass
        return
    sock.settimeout(None)
    log(f"port-forward {pod['metadata']['name']}:{port} -> {sock.getpeername()}")

    def upstream():  # client -> target
        while True:
            chunk = data.read()
            if not chunk:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=upstream, daemon=True)
    t.start()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data.write(chunk)
    except OSError:
        pass
    try:
        data.close()
        error.close()
    except OSError:
        pass
    t.join(timeout=30)
    sock.close()


def ws_portforward(ws, pod, ports, log):
    socks = []
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        ws.send_binary(bytes([2 * i]) + prefix)
        ws.send_binary(bytes([2 * i + 1]) + prefix)
        try:
            socks.append(_connect(pod, port))
        except OSError as e:
            log(str(e))
            ws.send_binary(bytes([2 * i + 1]) + str(e).encode())
            socks.append(None)
    remaining = [sum(1 for s in socks if s)]
    lock = threading.Lock()

    def downstream(i, sock):
        sock.settimeout(None)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                ws.send_binary(bytes([2 * i]) + chunk)
        except OSError:
            pass
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                ws.close()

    for i, s in enumerate(socks):
        if s:
            threading.Thread(target=downstream, args=(i, s), daemon=True).start()
    if not any(socks):
        ws.close()
    while True:
        msg = ws.recv()
        if msg is None:
            break
        _, payload = msg
        if not payload or payload[0] % 2 or payload[0] // 2 >= len(socks):
            continue
        s = socks[payload[0] // 2]
        if s:
            try:
                s.sendall(payload[1:])
            except OSError:
                pass
    for s in socks:
        if s:
            try:
                s.close()
            except OSError:
                pass


# ----------------------------------------------------------------------------
# SPDY transports


def raw_spdy_factory(sock, rfile, log):
    def read_exact(n):
        data = rfile.read(n)
        if len(data) < n:
            raise EOFError("spdy peer closed")
        return data
    return lambda on_stream: spdy.Connection(read_exact, sock.sendall, on_stream, log)


def ws_spdy_factory(ws, log):
    """SPDY carried in websocket binary messages (kubectl's tunnelled port-forward)."""
    buf = bytearray()

    def read_exact(n):
        while len(buf) < n:
            msg = ws.recv()
            if msg is None:
                raise EOFError("websocket closed")
            buf.extend(msg[1])
        out = bytes(buf[:n])
        del buf[:n]
        return out

    return lambda on_stream: spdy.Connection(read_exact, ws.send_binary, on_stream, log)
