"""The terminal bridge (issue 16): a call about one account must name it (``account:
null`` acted on whichever account the terminal was logged in to), a negative or missing
``Content-Length`` is refused at once (a negative one hung a thread), and the bridge serves
TLS with a certificate (``--certfile``)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from brokers.bridge.client import BridgeTerminal
from brokers.bridge.server import ACCOUNT_METHODS
from brokers.errors import BridgeRefused
from tests.conftest import SIM_SERVER, start_bridge

TOKEN = "test-bridge-token-0123456789"


@pytest.fixture
def bridge():
    running = start_bridge(TOKEN)
    running.add_account(4101)
    yield running
    running.process.terminate()
    running.process.wait(timeout=10)


def call(bridge, payload):
    return httpx.post(f"{bridge.url}/v1/call", json=payload, timeout=5,
                      headers={"Authorization": f"Bearer {TOKEN}"})


CALLS = {
    "account_info": lambda t: t.account_info(),
    "positions_total": lambda t: t.positions_total(),
    "positions_get": lambda t: t.positions_get(),
    "history_deals_get": lambda t: t.history_deals_get(dt.datetime(2017, 1, 1),
                                                       dt.datetime(2030, 1, 1)),
    "order_send": lambda t: t.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1,
                                          "type": 0, "price": 1.07}),
    "order_calc_margin": lambda t: t.order_calc_margin(0, "EURUSD", 0.1, 1.07),
}


def test_every_account_method_is_covered():
    assert set(CALLS) == ACCOUNT_METHODS


@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_call_about_an_account_must_name_it(bridge, method):
    # the terminal is logged in to 4101 by someone's call first
    owner = BridgeTerminal(bridge.url, TOKEN, timeout=5)
    assert owner.login(4101, password="pw-4101", server=SIM_SERVER)
    assert owner.account_info().login == 4101
    anyone = BridgeTerminal(bridge.url, TOKEN, timeout=5)  # never logged in: account null
    with pytest.raises(BridgeRefused) as refused:
        CALLS[method](anyone)
    assert refused.value.detail["code"] == "account_required"


def test_terminal_and_market_calls_need_no_account(bridge):
    response = call(bridge, {"method": "version", "account": None})
    assert response.status_code == 200
    response = call(bridge, {"method": "symbol_info_tick", "args": ["EURUSD"]})
    assert response.status_code == 200


def _raw(bridge, head: bytes) -> tuple[bytes, float]:
    host, port = bridge.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        reply = sock.recv(4096)
    return reply, time.monotonic() - started


@pytest.mark.parametrize(("length", "status"), [
    (b"Content-Length: -1\r\n", b"400"),
    (b"Content-Length: -99999\r\n", b"400"),
    (b"Content-Length: 1e3\r\n", b"400"),
    (b"", b"411"),
])
def test_a_negative_or_missing_content_length_is_refused_at_once(bridge, length, status):
    reply, seconds = _raw(bridge, b"POST /v1/call HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + TOKEN.encode() + b"\r\n" + length
                          + b"\r\n")
    assert reply.split(b" ")[1] == status, reply
    assert seconds < 2  # a read of -1 bytes waited for the client to close


def _certificate(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bridge.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "bridge.pem", tmp_path / "bridge.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_bridge_serves_tls_with_a_certificate(tmp_path, monkeypatch):
    cert_path, key_path = _certificate(tmp_path)
    running = start_bridge(TOKEN, "--certfile", str(cert_path), "--keyfile", str(key_path))
    try:
        assert running.url.startswith("https://")
        monkeypatch.setenv("MT5_BRIDGE_CA_FILE", str(cert_path))
        terminal = BridgeTerminal(running.url, TOKEN, timeout=5)
        assert terminal.version() is not None
        monkeypatch.delenv("MT5_BRIDGE_CA_FILE")
        untrusting = BridgeTerminal(running.url, TOKEN, timeout=5)
        assert untrusting.version() is None  # an unknown certificate is not talked to
        assert "certificate" in untrusting.last_error()[1].lower()
    finally:
        running.process.terminate()
        running.process.wait(timeout=10)
