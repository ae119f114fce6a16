"""A TCP proxy between trackline's processes and the broker, to drop their connections on purpose.

The embedded broker is memory-only and cannot restart, so a chaos run cuts the network
instead: the broker advertises the proxy's address, every client connects through it, and
``drop(seconds)`` closes every open connection and refuses new ones for that long, as a
network partition or a broker failover looks from the client side.
"""

from __future__ import annotations

import socket
import threading
import time


class BrokerProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._stopped = threading.Event()
        self.drops = 0
        self.refused = 0

    def start(self) -> BrokerProxy:
        self._server = socket.create_server((self.host, self.listen_port), reuse_port=False)
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, name="broker-proxy", daemon=True).start()
        return self

    def drop(self, seconds: float) -> None:
        """Close every connection now and refuse new ones for ``seconds``."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
            self.drops += 1
            doomed, self._open = self._open, set()
        for sock in doomed:
            _close(sock)

    def stop(self) -> None:
        self._stopped.set()
        self.drop(0)
        self._server.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._open.discard(sock)
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
