"""TCP relays on loopback that fail the way networks do: one that cuts one connection at a chosen byte (a request
dropped half-sent), and a switch that takes a server off the network and back."""

from __future__ import annotations

import contextlib
import socket
import threading

METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ")


class CuttingRelay:
    """Relays every connection to `127.0.0.1:target_port`. Once `arm(at)` is called, the connection that carries
    the `at`-th byte sent towards the target after that is cut there: the bytes before it are delivered, then both
    ends are closed at once. Every other connection, before and after, passes whole."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.sent, self.at, self.cut = 0, None, None  # bytes sent since armed; where to cut; what was cut
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def arm(self, at: int | None) -> None:
        """Cut the connection that carries the `at`-th byte sent from now on (None: cut nothing)."""
        with self.lock:
            self.sent, self.at, self.cut = 0, at, None

    def was_cut(self) -> str | None:
        """The request line of the request that was cut (None: the traffic since `arm` had fewer bytes)."""
        with self.lock:
            return self.cut

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                client, _ = self.listener.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.target_port))
                except OSError:
                    client.close()
                    continue
                threading.Thread(target=self._forward, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._back, args=(upstream, client), daemon=True).start()

    def _forward(self, client: socket.socket, upstream: socket.socket) -> None:
        """Client to target, counting the bytes and cutting at the armed one."""
        request = "?"
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if data.startswith(METHODS):
                    request = data.split(b"\r\n", 1)[0].decode("latin-1")
                with self.lock:
                    cut_here = self.at is not None and self.cut is None and self.sent + len(data) >= self.at
                    keep = self.at - self.sent if cut_here else len(data)
                    self.sent += len(data)
                    if cut_here:
                        self.cut = request
                upstream.sendall(data[:keep])
                if cut_here:
                    break
        _close(client, upstream)

    @staticmethod
    def _back(upstream: socket.socket, client: socket.socket) -> None:
        """Target to client, as it comes."""
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                client.sendall(data)
        _close(client, upstream)


class Switch:
    """Relays every connection to `127.0.0.1:target_port` while on; `cut()` drops the open ones and refuses new
    ones (a server down, as its clients see it) until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.on = target_port, True
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, name="switch", daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            self.on = False
            for sock in self.open:  # shut down, not closed: each pipe closes its own sockets as it ends
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open = []

    def restore(self) -> None:
        with self.lock:
            self.on = True

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                client, _ = self.listener.accept()
                with self.lock:
                    try:
                        upstream = socket.create_connection(("127.0.0.1", self.target_port), 10) if self.on else None
                    except OSError:
                        upstream = None
                    if upstream is None:
                        client.close()
                        continue
                    self.open += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """One direction of a switched connection, as it comes."""
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    _close(src, dst)


def _close(*sockets: socket.socket) -> None:
    """Both ends of a relayed connection, at once."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
