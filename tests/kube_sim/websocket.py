"""A minimal RFC 6455 websocket endpoint (server side) over an accepted socket.

Used for exec (`v5.channel.k8s.io`, `v4.channel.k8s.io`), for port-forward's
channel protocol (`portforward.k8s.io`) and as the tunnel that carries SPDY
for kubectl's `SPDY/3.1+portforward.k8s.io`. Sends are serialised by a lock;
one thread reads.
"""

import base64
import hashlib
import struct
import threading

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def choose_protocol(header_value, supported):
    """The first of `supported` (our preference order) that the client offered."""
    offered = [p.strip() for p in (header_value or "").split(",") if p.strip()]
    for p in supported:
        if p in offered:
            return p
    return None


class WebSocket:
    def __init__(self, sock, rfile):
        self.sock = sock
        self.rfile = rfile
        self.send_lock = threading.Lock()
        self.closed = False

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise EOFError("websocket closed")
            data += chunk
        return data

    def _frame(self):
        b0, b1 = self._read(2)
        fin, opcode, masked, length = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        mask = self._read(4) if masked else None
        payload = self._read(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if length < 64 else _unmask(payload, mask)
        return bool(fin), opcode, payload

    def recv(self):
        """The next data message as (opcode, payload), or None once the peer closed."""
        parts, first_op = [], None
        while True:
            try:
                fin, opcode, payload = self._frame()
            except (EOFError, OSError, ValueError):
                self.closed = True
                return None
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.close(payload[:2] if len(payload) >= 2 else b"\x03\xe8")
                return None
            if opcode != OP_CONT:
                first_op = opcode
            parts.append(payload)
            if fin:
                return first_op, b"".join(parts)

    def send(self, opcode, payload=b""):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        with self.send_lock:
            if self.closed and opcode != OP_CLOSE:
                raise OSError("websocket closed")
            self.sock.sendall(header + payload)

    def send_binary(self, payload):
        self.send(OP_BINARY, payload)

    def close(self, code=b"\x03\xe8"):
        """Send a close frame once (code 1000 by default)."""
        with self.send_lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.send(OP_CLOSE, code)
        except OSError:
            pass


def _unmask(payload, mask):
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
