"""moto's EC2 endpoint over real HTTP on loopback, for `sim serve`, the aws CLI and benchmarks.

State: the server runs moto's WSGI app in this process, and moto keeps its backends in
process-global objects that `mock_aws` uses too. So an `Ec2World` opened in this process is what
the server answers with — no copying, no reset API; requests signed with any dummy key land in
moto's default account, and the region of the signature selects the backend (the world's region).

Every request into moto is serialised by `MOTO_LOCK` (moto is not thread-safe) and its response
is materialised inside the lock. Faults come from an `Ec2Faults` plane (its own, or one shared
with in-process clients), armed in code or over HTTP:

    POST   /_fault/<Action>?count=N&code=RequestLimitExceeded&status=503   arm N failures
    POST   /_fault/<Action>?rate=0.2&code=InternalError                    arm a rate (plane needs an rng)
    DELETE /_fault[/<Action>]                                              disarm
    GET    /_fault                                                         armed faults and call counts (JSON)

`<Action>` may be `*` (any action).
"""

from __future__ import annotations

import io
import ipaddress
import json
import threading
import urllib.parse
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from tagjoin.sim.aws.ec2_account import DEFAULT_REGION, DUMMY_KEY
from tagjoin.sim.aws.ec2_faults import MOTO_LOCK, Ec2Faults, default_status, http_status_line, parse_query

FAULT_PREFIX = "/_fault"
MAX_BODY = 1 << 20  # EC2's own limit for a Query request is far below this
_BROKEN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InternalError</Code>'
    b"<Message>the simulated endpoint could not handle this request</Message></Error></Errors>"
    b"<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
)


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's per-request access line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: Any) -> None:
        """Malformed requests are answered (400, 414, 431); the terminal belongs to `sim serve`."""


class _LockedFaultingApp:
    def __init__(self, faults: Ec2Faults) -> None:
        self.faults = faults
        self._moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == FAULT_PREFIX or path.startswith(FAULT_PREFIX + "/"):
            return self._control(environ, start_response, path[len(FAULT_PREFIX) + 1 :])
        body = _read_body(environ)
        if len(body) > MAX_BODY:
            return _json(start_response, "413 Request Entity Too Large", {"error": f"body over {MAX_BODY} bytes"})
        environ["wsgi.input"] = io.BytesIO(body)  # give moto the body back
        params = parse_query(environ.get("QUERY_STRING", ""))
        params.update(parse_query(body) if _is_form(environ) else {})
        action = params.get("Action", "")
        with MOTO_LOCK:
            fault = self.faults.intercept(action, params, "http") if action else None
            if fault is not None:
                error = fault.body()
                start_response(
                    http_status_line(fault.status),
                    [
                        ("Content-Type", "text/xml;charset=UTF-8"),
                        ("Content-Length", str(len(error))),
                        ("x-amzn-RequestId", fault.request_id),
                    ],
                )
                return [error]
            try:
                result = self._moto(environ, start_response)
            except Exception:
                # A request moto cannot parse: an EC2-shaped 500, not werkzeug's traceback on the terminal.
                start_response(
                    "500 Internal Server Error",
                    [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(_BROKEN)))],
                )
                return [_BROKEN]
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    def _control(self, environ: WSGIEnvironment, start_response: StartResponse, action: str) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            if method == "GET" and not action:
                payload: dict[str, Any] = {
                    "armed": self.faults.armed_summary(),
                    "stats": self.faults.snapshot().as_dict(),
                }
                return _json(start_response, "200 OK", payload)
            if method == "DELETE":
                self.faults.disarm(action or None)
                return _json(start_response, "200 OK", {"disarmed": action or "all"})
            if method == "POST" and action:
                code = query.get("code", "RequestLimitExceeded")
                status = int(query["status"]) if "status" in query else default_status(code)
                if "rate" in query:
                    self.faults.arm_rate(action, float(query["rate"]), code=code, status=status)
                    return _json(start_response, "200 OK", {"action": action, "rate": float(query["rate"])})
                self.faults.arm(action, int(query.get("count", "1")), code=code, status=status)
                return _json(start_response, "200 OK", {"action": action, "armed": self.faults.armed(action)})
        except (ValueError, KeyError) as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        return _json(start_response, "405 Method Not Allowed", {"error": f"{method} {FAULT_PREFIX}/{action}"})


def _read_body(environ: WSGIEnvironment) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    # At most one byte over the limit, which is enough to refuse it.
    if length.isascii() and length.isdigit():
        data: bytes = stream.read(min(int(length), MAX_BODY + 1))
        return data
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream for us
        rest: bytes = stream.read(MAX_BODY + 1)
        return rest
    return b""


def _is_form(environ: WSGIEnvironment) -> bool:
    return "application/x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "")


def _json(start_response: StartResponse, status: str, payload: dict[str, Any]) -> list[bytes]:
    data = json.dumps(payload, sort_keys=True).encode() + b"\n"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class MotoServer:
    """A threaded werkzeug server in a daemon thread; `start()` returns the endpoint URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, faults: Ec2Faults | None = None) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulated EC2 endpoint only listens on loopback, not {host}")
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else Ec2Faults()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        if self._server is not None:
            return self.url
        server = make_server(
            self.host,
            self.port,
            _LockedFaultingApp(self.faults),
            threaded=True,
            request_handler=_QuietHandler,
        )
        self._server = server
        self.port = server.server_port
        # A short poll interval: stop() waits for serve_forever to notice, and the console's quit waits for stop().
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-ec2", daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        if thread is not None:
            thread.join()
        server.server_close()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the moto server is not started")
        return f"http://{self.host}:{self.port}"

    def env(self, region: str = DEFAULT_REGION, *, max_attempts: int | None = None) -> dict[str, str]:
        """The variables that point boto3 / the aws CLI at this endpoint (dummy credentials)."""
        out = {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
        if max_attempts is not None:
            out["AWS_RETRY_MODE"] = "standard"
            out["AWS_MAX_ATTEMPTS"] = str(max_attempts)
        return out

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
