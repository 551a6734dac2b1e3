"""SPDY/3.1 server side, as much as kubectl's port-forward and exec use.

kubectl 1.32 runs port-forward as SPDY tunnelled through a websocket
(subprotocol `SPDY/3.1+portforward.k8s.io`, each websocket binary message
carrying raw SPDY bytes) and falls back to a plain `Upgrade: SPDY/3.1`. The
client opens every stream (SYN_STREAM with headers such as streamtype, port,
requestid); the server answers each with an empty SYN_REPLY and then
exchanges DATA frames; FIN half-closes a direction, RST_STREAM aborts a
stream. Header blocks are zlib-compressed with one shared context per
direction, primed with the SPDY/3 dictionary. Flow control (WINDOW_UPDATE,
SETTINGS) is ignored: kubectl's spdystream does not enforce it.
"""

import queue
import struct
import threading
import zlib

_DICT_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date etag "
    "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
    "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
    "method get status |200 OK| version HTTP/1.1 url public set-cookie keep-alive origin")
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary():
    words = []
    for part in _DICT_WORDS.split("|"):
        words += [part] if part == "200 OK" else part.split()
    out = b"".join(struct.pack("!I", len(w)) + w.encode() for w in words) + _DICT_TAIL.encode()
    assert len(out) == 1423 and zlib.adler32(out) == 0xE3C6A7C2, "SPDY/3 dictionary mismatch"
    return out


DICTIONARY = _dictionary()

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5


class Stream:
    """One client-opened stream. read() returns b"" at the peer's FIN or reset."""

    def __init__(self, conn, stream_id, headers):
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        self.inbox = queue.Queue()
        self.remote_done = False
        self.local_done = False
        self.reset = False

    def read(self, timeout=None):
        try:
            data = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if data is None:
            self.inbox.put(None)  # stay at EOF
            return b""
        return data

    def write(self, data):
        for i in range(0, len(data), 32768):
            self.conn.send_data(self.id, data[i:i + 32768])

    def close(self):
        """Half-close our direction (empty DATA with FIN)."""
        if not self.local_done and not self.reset:
            self.local_done = True
            self.conn.send_data(self.id, b"", FLAG_FIN)

    def _remote_end(self):
        if not self.remote_done:
            self.remote_done = True
            self.inbox.put(None)


class Connection:
    """Serves one SPDY session. `read_exact(n)` and `write(bytes)` move raw bytes;
    `on_stream(stream)` is called (in the reader thread) after each SYN_REPLY."""

    def __init__(self, read_exact, write, on_stream, log=None):
        self.read_exact = read_exact
        self.write_raw = write
        self.on_stream = on_stream
        self.log = log or (lambda msg: None)
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self.lock = threading.Lock()
        self.streams = {}
        self.closed = threading.Event()

    # -- writing

    def _send(self, data):
        with self.lock:
            if self.closed.is_set():
                raise OSError("spdy connection closed")
            self.write_raw(data)

    def _control(self, ftype, flags, payload):
        return struct.pack("!HHI", 0x8003, ftype, (flags << 24) | len(payload)) + payload

    def _header_block(self, headers):
        raw = struct.pack("!I", len(headers))
        for k, v in headers.items():
            kb, vb = k.lower().encode(), v.encode()
            raw += struct.pack("!I", len(kb)) + kb + struct.pack("!I", len(vb)) + vb
        return self.deflate.compress(raw) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def send_data(self, stream_id, data, flags=0):
        self._send(struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data)

    def reply(self, stream_id, headers=None):
        with self.lock:  # compression state and frame order must agree
            frame = self._control(SYN_REPLY, 0, struct.pack("!I", stream_id) + self._header_block(headers or {}))
            self.write_raw(frame)

    def send_reset(self, stream_id, status=RST_CANCEL):
        self._send(self._control(RST_STREAM, 0, struct.pack("!II", stream_id, status)))

    # -- reading

    def _parse_headers(self, block):
        raw = self.inflate.decompress(block)
        (count,) = struct.unpack_from("!I", raw, 0)
        pos, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from("!I", raw, pos)
            name = raw[pos + 4:pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from("!I", raw, pos)
            out[name.lower()] = raw[pos + 4:pos + 4 + n].decode().split("\x00")[0]
            pos += 4 + n
        return out

    def serve(self):
        """Read frames until the peer goes away; then end every stream."""
        try:
            while True:
                head = self.read_exact(8)
                (word, flags_len) = struct.unpack("!II", head)
                flags, length = flags_len >> 24, flags_len & 0xFFFFFF
                payload = self.read_exact(length) if length else b""
                if word & 0x80000000:
                    if not self._control_frame(word & 0xFFFF, flags, payload):
                        break
                else:
                    self._data_frame(word & 0x7FFFFFFF, flags, payload)
        except (EOFError, OSError, zlib.error, struct.error) as e:
            self.log(f"spdy: connection ended: {e!r}")
        finally:
            self.closed.set()
            for s in list(self.streams.values()):
                s.reset = True
                s._remote_end()

    def _control_frame(self, ftype, flags, payload):
        if ftype == SYN_STREAM:
            stream_id = struct.unpack_from("!I", payload, 0)[0] & 0x7FFFFFFF
            headers = self._parse_headers(payload[10:])
            stream = Stream(self, stream_id, headers)
            self.streams[stream_id] = stream
            self.reply(stream_id)
            if flags & FLAG_FIN:
                stream._remote_end()
            self.on_stream(stream)
        elif ftype == RST_STREAM:
            stream_id = struct.unpack_from("!I", payload, 0)[0] & 0x7FFFFFFF
            stream = self.streams.pop(stream_id, None)
            if stream:
                stream.reset = True
                stream._remote_end()
        elif ftype == PING:
            self._send(self._control(PING, 0, payload))
        elif ftype == GOAWAY:
            return False
        elif ftype == HEADERS:
            self._parse_headers(payload[4:])  # keep the zlib context in step
        return True  # SETTINGS, WINDOW_UPDATE and others: ignored

    def _data_frame(self, stream_id, flags, payload):
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if payload:
            stream.inbox.put(payload)
        if flags & FLAG_FIN:
            stream._remote_end()
