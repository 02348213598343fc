"""The terminal bridge: a small HTTP service that runs next to one MetaTrader 5 terminal.

It exposes a whitelist of the ``MetaTrader5`` module's calls to Linux workers, as JSON over
HTTP, behind a bearer token. There is no eval, no pickling and no attribute access by name
from the wire: a method name that is not in ``ALLOWED_METHODS`` is refused, and every call
is checked against the real module's signature (``brokers.mt5_signatures``: which arguments
are positional, which keywords, their types) before the terminal sees it, so a call the
real module would refuse (a keyword date, a positional ticket) is refused here too.

One bridge process serves one terminal. A terminal holds one logged-in account at a time,
so every request is one job on a single worker thread: "log in to the request's account if
the terminal is on another one, then make the call". Jobs never interleave, so a login
switch can never land between another request's login and its read. A job whose caller has
already given up (its deadline passed while it waited in the queue) is dropped unrun, which
keeps an ``order_send`` from executing after its caller was told "timeout".

On Windows, beside a real terminal, this file needs only the standard library, the
``MetaTrader5`` package and this checkout's ``brokers`` package (standard library only) for
the signature table: ``python brokers/bridge/server.py --token-file token.txt``. ``--sim``
serves the simulated terminal of ``brokers.sim`` instead (the demo and the tests);
``--server-utc-offset 2`` makes it a GMT+2 trade server; ``--login-ms 150`` (the default) is
what its login switch to another account costs (0 for tests that need speed).

Protocol (all bodies JSON, ``Authorization: Bearer <token>`` on every request):

- ``POST /v1/call`` ``{"method": str, "args": [...], "kwargs": {...},
  "account": {"login": int, "password": str, "server": str} | null, "timeout": float}``
  answers ``200 {"result": ..., "last_error": [code, message]}``. Namedtuples travel as
  ``{"__nt__": type name, "fields": {...}}``; ``None`` stays ``null``.
- Errors answer ``{"code": ..., "message": ...}``: 401 ``unauthorized``, 400
  ``malformed_json`` / ``bad_request`` (also a negative or non-numeric ``Content-Length``)
  / ``method_not_allowed`` / ``bad_params`` (the message quotes the real module's refusal
  and its docstring) / ``account_required`` (a call about one account, in
  ``ACCOUNT_METHODS``, with ``account: null``), 411 ``length_required``, 413
  ``body_too_large``, 504 ``timeout``, 502 ``bad_terminal_reply``.

TLS: account passwords cross this link, so outside one machine or a private network run it
behind TLS: either ``--certfile cert.pem --keyfile key.pem`` (the standard library's
``ssl``; then ``MT5_BRIDGE_URL=https://…``, and ``MT5_BRIDGE_CA_FILE`` on the Linux side for
a private CA), or a reverse proxy that terminates TLS in front of ``--host 127.0.0.1``.
- ``GET /healthz`` answers ``{"ok": true}`` without a token and says nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if not __package__:  # run as a script beside a terminal: python brokers/bridge/server.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from brokers.mt5_signatures import (  # after the path set-up above, for script runs
    DOCSTRINGS,
    MODULE_VERSION,
    SIGNATURES,
    Form,
    call_error,
)

logger = logging.getLogger("mt5.bridge")

MAX_BODY_BYTES = 1_000_000
DEFAULT_CALL_TIMEOUT = 10.0
MAX_CALL_TIMEOUT = 120.0

# Method name -> the call forms it accepts (brokers.mt5_signatures.Form). Nothing else
# reaches the terminal. ``initialize`` is this bridge's own verb, without arguments: it logs
# the terminal in to the request's account (the real initialize/login are called here, in
# TerminalWorker.call, with their real signatures).
Methods = dict[str, tuple[Form, ...]]
SERVED = (
    "version", "terminal_info", "last_error", "account_info", "positions_total",
    "positions_get", "history_deals_get", "symbol_info", "symbol_info_tick", "order_send",
    "order_calc_margin", "copy_rates_from_pos",
)
ALLOWED_METHODS: Methods = {"initialize": (Form(),),
                            **{name: SIGNATURES[name] for name in SERVED}}
# Extra calls of the simulated terminal, served only with --sim (brokers/sim/README.md).
# Not MetaTrader 5 calls: their arguments are checked for shape, not type.
SIM_METHODS: Methods = {
    "sim_inject_fault": (Form(("kind",), keywords=(
        "method", "count", "login", "delay", "points", "fraction"), typed=False),),
    "sim_clear_faults": (Form(),),
    "sim_advance": (Form(("bars",), required=0, keywords=("bars", "fraction"), typed=False),),
    "sim_state": (Form(),),
    "sim_open": (Form(("login", "symbol", "side", "volume"), keywords=(
        "sl", "tp", "magic", "comment", "reason", "price"), typed=False),),
    "sim_close": (Form(("login", "ticket"), keywords=("reason", "volume", "magic"),
                       typed=False),),
    "sim_create_account": (Form(("login", "password", "investor_password", "server",
                                 "currency", "leverage", "balance", "name"), required=7,
                                typed=False),),
    "sim_quote": (Form(("symbol",), required=0, typed=False),),
    "sim_positions": (Form(("login",), typed=False),),
    "sim_account_info": (Form(("login",), typed=False),),
    "sim_balance_operation": (Form(("login", "amount", "comment", "kind"), required=3,
                                   keywords=("kind",), typed=False),),
    "sim_reticket": (Form(("login", "ticket"), typed=False),),
}
# Calls about one account (its figures, positions, deals, orders, margin at its leverage):
# they must name it, or the terminal would answer for whichever account it is logged in to
# (another member's). Terminal-level and market-data calls, and the sim's own verbs (which
# name their login), need none.
ACCOUNT_METHODS = frozenset({
    "account_info", "positions_total", "positions_get", "history_deals_get",
    "order_send", "order_calc_margin",
})
ORDER_REQUEST_KEYS = frozenset(
    {
        "action", "symbol", "volume", "type", "price", "sl", "tp", "deviation", "magic",
        "comment", "type_filling", "type_time", "position", "position_by", "expiration",
        "order", "stoplimit",
    }
)


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _reject_constant(name: str) -> Any:
    raise BadRequest("malformed_json", f"{name} is not a number this bridge accepts")


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def validate_call(payload: Any, methods: Methods) -> tuple[
    str, list[Any], dict[str, Any], dict[str, Any] | None, float
]:
    """Check a decoded request body; return (method, args, kwargs, account, timeout).

    Raises ``BadRequest`` naming the offending field. The call must fit one of the method's
    forms (``bad_params`` with the real module's message otherwise). Arguments may only be
    JSON scalars, except ``order_send``'s request, a flat dict of known keys with scalar
    values.
    """
    if not isinstance(payload, dict):
        raise BadRequest("bad_request", "body must be a JSON object")
    method = payload.get("method")
    if not isinstance(method, str) or method not in methods:
        raise BadRequest("method_not_allowed", f"method {method!r} is not served")
    args = payload.get("args", [])
    kwargs = payload.get("kwargs", {})
    _check_arguments(method, args, kwargs, methods)
    account = payload.get("account")
    if account is not None:
        _check_account(account)
    timeout = payload.get("timeout", DEFAULT_CALL_TIMEOUT)
    if (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not 0 < timeout <= MAX_CALL_TIMEOUT
    ):
        raise BadRequest("bad_params", f"timeout must be in (0, {MAX_CALL_TIMEOUT}] seconds")
    if account is None and method in ACCOUNT_METHODS:
        raise BadRequest("account_required",
                         f"{method} acts on one account: name it in \"account\"")
    return method, args, kwargs, account, float(timeout)


def _check_arguments(method: str, args: Any, kwargs: Any, methods: Methods) -> None:
    """The call fits one of the method's forms, and its values are finite JSON scalars
    (``order_send``'s request: a flat dict of known keys with scalar values)."""
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise BadRequest("bad_params", "args must be a list and kwargs an object")
    refused = call_error(methods[method], args, kwargs)
    if refused is not None:
        real = DOCSTRINGS.get(method)
        raise BadRequest("bad_params", f"{method}: {refused}" + (
            f" (MetaTrader5 {MODULE_VERSION}: {real})" if real else ""))
    for value in [*args, *kwargs.values()]:
        if method == "order_send" and isinstance(value, dict):
            bad_keys = set(value) - ORDER_REQUEST_KEYS
            if bad_keys:
                raise BadRequest("bad_params", f"order request has unknown keys {sorted(bad_keys)}")
            if not all(_is_scalar(v) for v in value.values()):
                raise BadRequest("bad_params", "order request values must be finite scalars")
        elif not _is_scalar(value):
            raise BadRequest("bad_params", f"{method} arguments must be finite scalars")


def _check_account(account: Any) -> None:
    """``{"login": positive int, "password": str, "server": non-empty str}``."""
    if not isinstance(account, dict):
        raise BadRequest("bad_params", "account must be an object")
    login, password, server = (account.get(k) for k in ("login", "password", "server"))
    if not isinstance(login, int) or isinstance(login, bool) or login <= 0:
        raise BadRequest("bad_params", "account.login must be a positive integer")
    if not isinstance(password, str) or not isinstance(server, str) or not server:
        raise BadRequest("bad_params", "account.password and account.server are strings")


def encode(value: Any) -> Any:
    """Turn a terminal's reply into JSON-safe data (namedtuples tagged by type name)."""
    names = getattr(getattr(value, "dtype", None), "names", None)
    if names:  # a numpy structured array (copy_rates_*): one record per row
        return [{"__nt__": "Rate", "fields": {n: encode(v) for n, v in zip(
            names, row.tolist(), strict=True)}} for row in value]
    if hasattr(value, "_asdict") and hasattr(value, "_fields"):
        fields = {k: encode(v) for k, v in value._asdict().items()}
        return {"__nt__": type(value).__name__, "fields": fields}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest("bad_terminal_reply", "terminal answered a non-finite number", 502)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)  # e.g. a Decimal or datetime from the simulated terminal


class TerminalWorker:
    """Runs every terminal job on one thread, so login switches and calls never interleave."""

    def __init__(self, terminal: Any, methods: Methods) -> None:
        self.terminal = terminal
        self.methods = methods
        self._jobs: queue.Queue[tuple[Callable[[], Any], dict[str, Any], threading.Event]] = (
            queue.Queue()
        )
        self._current: tuple[int, str, str] | None = None  # login, server, password digest
        self._initialized = False
        thread = threading.Thread(target=self._run, name="terminal-worker", daemon=True)
        thread.start()

    def _run(self) -> None:
        while True:
            job, box, done = self._jobs.get()
            if time.monotonic() > box["deadline"]:
                box["dropped"] = True  # its caller already answered "timeout"
            else:
                try:
                    box["value"] = job()
                except BaseException as exc:  # noqa: BLE001 - handed back to the request thread
                    box["error"] = exc
            done.set()

    def submit(self, job: Callable[[], Any], timeout: float) -> Any:
        box: dict[str, Any] = {"deadline": time.monotonic() + timeout}
        done = threading.Event()
        self._jobs.put((job, box, done))
        if not done.wait(timeout) or box.get("dropped"):
            raise BadRequest("timeout", f"terminal did not answer within {timeout:g} s", 504)
        if "error" in box:
            raise box["error"]
        return box["value"]

    def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
             account: dict[str, Any] | None) -> dict[str, Any]:
        """One job: switch to ``account`` if needed, then call ``method``."""
        terminal = self.terminal
        if not self._initialized:
            if not terminal.initialize():
                return {"result": None, "last_error": list(terminal.last_error())}
            self._initialized = True
        if account is not None:
            digest = hashlib.sha256(account["password"].encode()).hexdigest()
            wanted = (account["login"], account["server"], digest)
            if wanted != self._current or method == "initialize":
                self._current = None
                ok = terminal.login(
                    account["login"], password=account["password"], server=account["server"]
                )
                if not ok:
                    return {"result": None, "last_error": list(terminal.last_error()),
                            "login_failed": True}
                self._current = wanted
        if method == "initialize":
            return {"result": True, "last_error": list(terminal.last_error())}
        result = getattr(terminal, method)(*args, **kwargs)
        return {"result": encode(result), "last_error": list(terminal.last_error())}


def authorize(header: str, expected: bytes) -> None:
    """``Authorization: Bearer <token>``, compared in constant time; 401 otherwise."""
    given = header[len("Bearer "):].encode() if header.startswith("Bearer ") else b""
    if not hmac.compare_digest(given, expected):
        raise BadRequest("unauthorized", "missing or wrong bridge token", 401)


def read_json_body(declared: str | None, rfile: Any) -> Any:
    """Read exactly ``Content-Length`` bytes (required, digits only, at most
    ``MAX_BODY_BYTES``) and decode them as strict JSON (no NaN or Infinity)."""
    if declared is None:
        raise BadRequest("length_required", "Content-Length is required",
                         HTTPStatus.LENGTH_REQUIRED)
    # digits only: a negative length made rfile.read() wait for EOF (a hung thread)
    if not declared.strip().isdigit():
        raise BadRequest("bad_request", "Content-Length must be a non-negative integer")
    length = int(declared)
    if length > MAX_BODY_BYTES:
        raise BadRequest("body_too_large", f"body over {MAX_BODY_BYTES} bytes", 413)
    raw = rfile.read(length)
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest("malformed_json", "body is not valid JSON") from None


def make_handler(worker: TerminalWorker, token: str) -> type[BaseHTTPRequestHandler]:
    expected = token.encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "mt5-bridge/1"
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm on, the second
        # waits for the client's delayed ACK (~40 ms per call on Linux).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            logger.debug("%s " + format, self.address_string(), *args)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, allow_nan=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"code": "not_found", "message": "no such path"})

        def do_POST(self) -> None:
            try:
                body = self._handle()
            except BadRequest as exc:
                self._reply(exc.status, {"code": exc.code, "message": exc.message})
                return
            except Exception as exc:
                logger.exception("terminal call failed")
                self._reply(500, {"code": "terminal_error",
                                  "message": f"{type(exc).__name__}: {exc}"[:500]})
                return
            self._reply(200, body)

        def _handle(self) -> dict[str, Any]:
            if self.path != "/v1/call":
                raise BadRequest("not_found", "no such path", 404)
            authorize(self.headers.get("Authorization", ""), expected)
            payload = read_json_body(self.headers.get("Content-Length"), self.rfile)
            method, args, kwargs, account, timeout = validate_call(payload, worker.methods)
            return worker.submit(lambda: worker.call(method, args, kwargs, account), timeout)

    return Handler


def serve(terminal: Any, *, token: str, host: str = "127.0.0.1", port: int = 8765,
          methods: Methods | None = None) -> ThreadingHTTPServer:
    """Build the HTTP server (not started). ``server.server_address`` has the bound port."""
    if len(token) < 16:
        raise ValueError("the bridge token must be at least 16 characters")
    worker = TerminalWorker(terminal, methods or ALLOWED_METHODS)
    httpd = ThreadingHTTPServer((host, port), make_handler(worker, token))
    httpd.daemon_threads = True
    return httpd


def tls_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or newer) for ``--certfile``/``--keyfile``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def _read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            return fh.read().strip()
    token = os.environ.get("MT5_BRIDGE_TOKEN", "")
    if not token:
        raise SystemExit("set MT5_BRIDGE_TOKEN or pass --token-file")
    return token


def _roster_part(text: str, parser: argparse.ArgumentParser) -> tuple[int, int]:
    part, _, parts = text.partition("/")
    if not (part.isdigit() and parts.isdigit() and 1 <= int(part) <= int(parts)):
        parser.error(f"--roster-part {text!r}: K/N with 1 <= K <= N, e.g. 1/2")
    return int(part), int(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="MetaTrader 5 terminal bridge")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token-file")
    parser.add_argument("--sim", action="store_true", help="serve the simulated terminal")
    parser.add_argument("--bar-seconds", type=float, default=2.0,
                        help="--sim: real seconds per replayed H1 bar")
    parser.add_argument("--manual-clock", action="store_true",
                        help="--sim: prices move only by sim_advance (tests)")
    parser.add_argument("--members", type=int, default=20, help="--sim: demo roster size")
    parser.add_argument("--start-bar", type=int, default=0, help="--sim: first bar to replay")
    parser.add_argument("--bot", action="store_true", help="--sim: run the demo trading bot")
    parser.add_argument("--no-initial-orders", action="store_true",
                        help="--sim: create the roster's accounts without positions")
    parser.add_argument("--bench-accounts", type=int, default=0,
                        help="--sim: extra accounts for bench/ (5 positions each)")
    parser.add_argument("--server-utc-offset", type=float, default=0.0, metavar="HOURS",
                        help="--sim: the trade server's UTC offset; reported times are "
                             "its wall clock (e.g. 2 for a GMT+2 server)")
    parser.add_argument("--login-ms", type=float, default=150.0, metavar="MS",
                        help="--sim: milliseconds a login switch to another account costs, "
                             "as in a real terminal (0: instant, for tests)")
    parser.add_argument("--roster-part", default="1/1", metavar="K/N",
                        help="--sim: hold only part K of N of the demo roster (a demo fleet "
                             "of N terminals; brokers.sim.roster.roster_part)")
    parser.add_argument("--certfile", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--keyfile", help="--certfile's private key, if not in the same file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    token = _read_token(args)

    if args.sim:
        from brokers.sim.runtime import build_demo_terminal

        terminal, background = build_demo_terminal(
            bar_seconds=args.bar_seconds, manual=args.manual_clock, members=args.members,
            start_bar=args.start_bar, bot=args.bot, bench_accounts=args.bench_accounts,
            initial_orders=not args.no_initial_orders,
            server_utc_offset_hours=args.server_utc_offset, login_ms=args.login_ms,
            roster_part=_roster_part(args.roster_part, parser),
        )
        methods = {**ALLOWED_METHODS, **SIM_METHODS}
    else:  # beside a real terminal, on Windows
        import MetaTrader5 as terminal  # type: ignore[import-not-found, no-redef]  # noqa: N813

        background = []
        methods = ALLOWED_METHODS
    httpd = serve(terminal, token=token, host=args.host, port=args.port, methods=methods)
    scheme = "http"
    if args.certfile:
        httpd.socket = tls_context(args.certfile, args.keyfile).wrap_socket(
            httpd.socket, server_side=True)
        scheme = "https"
    for start in background:
        start()
    host, port = str(httpd.server_address[0]), int(httpd.server_address[1])
    print(f"mt5 bridge listening on {scheme}://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
