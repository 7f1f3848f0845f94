"""Real network faults between the backup and a server: a TCP relay that can stall or go
down, and an HTTP relay in front of S3 that can answer 500 to part uploads.

Both listen on 127.0.0.1 in threads of the test process; the backup runs in its own process.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from urllib.parse import urlsplit

from amprenta_backup.core.pitr.localserver import free_port

PASS, STALL, DOWN, PARTS_500 = "pass", "stall", "down", "500 for part uploads"


class TcpProxy:
    """Relays 127.0.0.1:``port`` to ``target``.

    ``stall()``: connections stay open and accepted, and nothing more is relayed either way
    (a frozen endpoint or a stuck middlebox). ``down()``: every connection is closed and new
    ones are refused. ``resume()``: relay again.

    :param target_port: where to relay to, on 127.0.0.1
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = PASS
        self.seen = 0  # connections accepted
        self.relayed = 0  # bytes relayed, both ways
        self._budget: int | None = None
        self._gate = threading.Event()
        self._gate.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.seen += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._gate.wait()
                if self.mode == DOWN:
                    break
                dst.sendall(data)
                self._count(len(data))
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _count(self, size: int) -> None:
        with self._lock:
            self.relayed += size
            if self._budget is not None and self.relayed >= self._budget:
                self._budget = None
                self.stall()

    def stall_after(self, size: int) -> None:
        """Relay ``size`` more bytes, then stall: an endpoint that freezes mid-upload, at a
        point fixed by bytes rather than by how fast this machine happens to be."""
        with self._lock:
            self._budget = self.relayed + size

    def stall(self) -> None:
        self.mode = STALL
        self._gate.clear()

    def down(self) -> None:
        self.mode = DOWN
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()
        self._gate.set()

    def resume(self) -> None:
        if self._listener is None:
            self._listen()
        self.mode = PASS
        self._gate.set()

    def close(self) -> None:
        self.down()


class S3FaultProxy:
    """An HTTP relay to an S3 endpoint; with ``mode = PARTS_500`` every ``UploadPart``
    request is answered ``500 InternalError`` (the body is read, nothing is relayed).

    :param endpoint_url: the real endpoint (moto's server)
    """

    def __init__(self, endpoint_url: str) -> None:
        target = urlsplit(endpoint_url)
        self.mode = PASS
        self.failed_parts = 0
        self.relayed = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append((self.command, self.path,
                                       {k.lower(): v for k, v in self.headers.items()}))
                if proxy.mode == PARTS_500 and "partNumber=" in self.path:
                    proxy.failed_parts += 1
                    payload = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>"
                               b"InternalError</Code><Message>injected</Message></Error>")
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                proxy.relayed += 1
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length",
                                 resp.getheader("Content-Length", "0") if head else str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> S3FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
