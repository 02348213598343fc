"""The IB Gateway stand-in as a real process, for the broker tests."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
USD_ACCOUNT = "DU1234567"
EUR_ACCOUNT = "DU7654321"


@dataclass
class IbGatewayProcess:
    """``python -m brokers.sim.ibgateway`` on free ports, with its admin channel."""

    host: str
    port: int
    admin_port: int
    process: subprocess.Popen
    _admin: Any = field(default=None, repr=False)

    def admin(self, op: str, **params: Any) -> Any:
        """One admin command (not TWS API): its result, or AssertionError on a refusal."""
        if self._admin is None:
            self._admin = socket.create_connection((self.host, self.admin_port), timeout=10)
        stream = self._admin.makefile("rw")
        stream.write(json.dumps({"op": op, **params}) + "\n")
        stream.flush()
        reply = json.loads(stream.readline())
        assert reply["ok"], reply
        return reply["result"]

    def fault(self, kind: str, **params: Any) -> None:
        self.admin("fault", kind=kind, **params)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def start_ib_gateway(*extra: str) -> IbGatewayProcess:
    process = subprocess.Popen(
        [sys.executable, "-m", "brokers.sim.ibgateway", "--host", "127.0.0.1", "--port", "0",
         "--admin-port", "0", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on ([\d.]+):(\d+) admin [\d.]+:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the IB Gateway stand-in did not start: {line!r}")
    return IbGatewayProcess(match.group(1), int(match.group(2)), int(match.group(3)), process)


@pytest.fixture
def ib_gateway():
    """A fresh stand-in process (DU1234567 in USD with 100,000; DU7654321 in EUR with
    50,000); every ibkr session of this process is closed afterwards."""
    from brokers.ibkr import close_sessions

    gateway = start_ib_gateway()
    yield gateway
    close_sessions()
    gateway.stop()
