"""Fault injection for the reliability tests: an endpoint that can be taken down and brought back.

:class:`OutageProxy` forwards TCP connections to an upstream (the embedded emulator). ``down()`` stops accepting
and cuts every open connection, so clients see refused connections exactly as when the service is gone; ``up()``
listens again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any


class OutageProxy:
    """A TCP forwarder on 127.0.0.1 whose availability the test controls."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The endpoint to give clients."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        """True while the proxy accepts connections."""
        return self._listener is not None

    def up(self) -> None:
        """Listen (again) on the proxy's port."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._accepting is not None:
            self._accepting.join(5)
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)

    def __enter__(self) -> OutageProxy:
        self.up()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process and its waited-for children, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime are fields 14 and 15 of stat (1-based); after the ")" split they are at 11 and 12
    return (int(fields[11]) + int(fields[12])) / ticks


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds of ``root_pid`` and all of its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += process_cpu_seconds(pid)
        stack.extend(children.get(pid, []))
    return total


class FaultyHttpProxy:
    """An HTTP forwarder on 127.0.0.1 that fails or delays chosen AWS actions (``SendMessage``, ...).

    The action is read from the ``X-Amz-Target`` header (JSON protocol) or the form body's ``Action=`` (query
    protocol). ``fail(action, times)`` answers the next ``times`` calls with an HTTP 500 without forwarding them;
    ``delay(action, seconds, times)`` holds them before forwarding. ``seen(action)`` counts the calls.
    """

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        import http.server

        self.upstream = (upstream_host, upstream_port)
        self._rules: list[tuple[str, str, float, list[int]]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                proxy._forward(self)

            def do_GET(self) -> None:
                proxy._forward(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint to give clients."""
        return f"http://127.0.0.1:{self.port}"

    def fail(self, action: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``action`` with HTTP 500."""
        with self._lock:
            self._rules.append((action, "fail", 0.0, [times]))

    def delay(self, action: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``action`` for ``seconds`` before forwarding them."""
        with self._lock:
            self._rules.append((action, "delay", seconds, [times]))

    def seen(self, action: str) -> int:
        """How many calls of ``action`` arrived."""
        with self._lock:
            return self._seen.get(action, 0)

    def _rule_for(self, action: str) -> tuple[str, float] | None:
        with self._lock:
            self._seen[action] = self._seen.get(action, 0) + 1
            for name, kind, seconds, left in self._rules:
                if name == action and left[0] > 0:
                    left[0] -= 1
                    return kind, seconds
        return None

    def _forward(self, handler: Any) -> None:
        import http.client
        import time
        from urllib.parse import parse_qs

        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        target = handler.headers.get("X-Amz-Target") or ""
        action = (
            target.rsplit(".", 1)[-1] if target else (parse_qs(body.decode(errors="replace")).get("Action") or [""])[0]
        )
        rule = self._rule_for(action)
        if rule is not None and rule[0] == "fail":
            payload = b'{"__type": "InternalError", "message": "injected by the test"}'
            handler.send_response(500)
            handler.send_header("Content-Type", "application/x-amz-json-1.0")
            handler.send_header("x-amzn-query-error", "InternalError;Receiver")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        if rule is not None:
            time.sleep(rule[1])
        upstream = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in {"host", "connection"}}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in {"transfer-encoding", "connection", "content-length", "server", "date"}:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> FaultyHttpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
