"""A raw RFC 6455 WebSocket client for the realtime tests (standard library
only): the handshake, masked client frames, fragmented and control frames,
and the close handshake.  Not a test module (pytest collects test_*.py)."""
import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeRefused(Exception):
    def __init__(self, status, headers, body):
        super().__init__("handshake refused: %s %r" % (status, body[:200]))
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed: %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class WS:
    """One client connection.  recv_* answer server pings with pongs
    unless auto_pong is False."""

    def __init__(self, host, port, path="/api/realtime", headers=None,
                 timeout=10.0, auto_pong=True, tls=None, rcvbuf=None):
        if rcvbuf:
            # A small receive window (set before connecting).
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port),
                                                 timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.timeout = timeout
        self.auto_pong = auto_pong
        self.buf = b""
        self.closed = None          # (code, reason) once a close arrived
        self.pings = 0              # server pings seen
        self.backlog = []           # messages request() passed over
        key = base64.b64encode(os.urandom(16)).decode()
        req = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port),
               "Upgrade: websocket", "Connection: Upgrade",
               "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        for k, v in (headers or {}).items():
            req.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if status != 101:
            n = int(hdrs.get("content-length", "0"))
            body = self._read_exact(n) if n else b""
            self.sock.close()
            raise HandshakeRefused(status, hdrs, body)
        want = base64.b64encode(hashlib.sha1(
            (key + GUID).encode()).digest()).decode()
        assert hdrs.get("sec-websocket-accept") == want, hdrs
        self.headers = hdrs

    # ---- bytes ----
    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise Closed(None, "connection closed by the server (TCP)")
        self.buf += chunk

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    # ---- frames ----
    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            body = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            self.sock.sendall(head + key + body)
        else:
            self.sock.sendall(head + payload)

    def recv_frame(self, timeout=None):
        """(fin, opcode, payload) of the next frame."""
        self.sock.settimeout(timeout if timeout is not None
                             else self.timeout)
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        assert not b1 & 0x80, "a server frame must not be masked"
        return bool(b0 & 0x80), b0 & 0x0F, self._read_exact(n)

    def recv_message(self, timeout=None):
        """The next data message (text as str); control frames are handled
        on the way.  Raises Closed on a close frame or EOF."""
        deadline = time.time() + (timeout if timeout is not None
                                  else self.timeout)
        parts, op0 = [], None
        while True:
            left = max(0.001, deadline - time.time())
            try:
                fin, op, data = self.recv_frame(left)
            except socket.timeout:
                raise TimeoutError("no message within the timeout")
            if op == OP_PING:
                self.pings += 1
                if self.auto_pong:
                    self.send_frame(OP_PONG, data)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 \
                    else None
                self.closed = (code, data[2:].decode("utf-8", "replace"))
                try:
                    self.send_frame(OP_CLOSE, data[:2])
                except OSError:
                    pass
                raise Closed(*self.closed)
            if op != OP_CONT:
                op0 = op
            parts.append(data)
            if fin:
                data = b"".join(parts)
                return data.decode() if op0 == OP_TEXT else data

    def recv(self, timeout=None):
        """The next message as JSON."""
        return json.loads(self.recv_message(timeout))

    def send(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj))

    def request(self, obj, timeout=None):
        """Sends obj and returns the first reply carrying its id (messages
        before it are kept in self.backlog)."""
        self.send(obj)
        while True:
            m = self.recv(timeout)
            if m.get("id") == obj.get("id"):
                return m
            self.backlog.append(m)

    def close(self, code=1000, reason=""):
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) +
                            reason.encode())
            end = time.time() + 2
            while time.time() < end:
                fin, op, data = self.recv_frame(end - time.time())
                if op == OP_CLOSE:
                    self.closed = (struct.unpack("!H", data[:2])[0]
                                   if len(data) >= 2 else None, "")
                    break
        except (OSError, Closed, ValueError):
            pass
        finally:
            self.sock.close()

    def abort(self):
        """Drops the TCP connection without a close handshake."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()
