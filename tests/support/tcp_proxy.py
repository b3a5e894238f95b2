"""A TCP proxy on loopback that a test can freeze: bytes stop flowing, no connection closes.

    with FreezableProxy(("127.0.0.1", 5432)) as proxy:
        ...            # connect to proxy.port instead of 5432
        proxy.freeze() # the server looks stalled: connects and writes succeed, answers never come
        proxy.thaw()   # everything held back is delivered, in order, and traffic flows again

This is what a stopped database process or a wedged middlebox looks like to a client: the
kernel still accepts and acknowledges, so neither a refused connection nor a TCP timeout tells
the client anything is wrong.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

__all__ = ["FreezableProxy"]


class FreezableProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> FreezableProxy:
        listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._spawn(self._accept, "proxy-accept")
        return self

    def freeze(self) -> None:
        """Stop forwarding in both directions; connections stay open and are still accepted."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward what was held back, then everything again."""
        self._flowing.set()

    def stop(self) -> None:
        self._closed = True
        self._flowing.set()
        with self._lock:
            sockets = list(self._sockets)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FreezableProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._pump, "proxy-up", client, server)
            self._spawn(self._pump, "proxy-down", server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # frozen: hold the bytes, keep the connection
                if self._closed:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
