"""EC2 fault injection and call accounting, at the point where real botocore sends a request.

`Ec2Faults` is one fault/accounting plane for a simulated account: attach it to any number of
boto3 EC2 clients (and hand it to `tagjoin.sim.aws.moto_endpoint.MotoServer` for HTTP callers). Every request
attempt is counted by action and offered to the observers before it reaches moto; an armed fault
answers instead of moto with EC2's own error XML, so botocore's real parser, retry classifier
and `ClientError` are exercised.

Why moto's own handler is taken off the client: botocore calls *every* `before-send` handler and
only then takes the first response, so a fault handler that merely sits next to moto's would
still let moto apply the request — a "throttled" CreateTags would write the tag. `bind_to_moto`
replaces moto's handler on that client by one that skips requests already answered by a fault
and runs moto under `MOTO_LOCK`, because moto's backends are not thread-safe and `sim serve`
touches them from engine and HTTP threads at once.
"""

from __future__ import annotations

import random
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import EndpointConnectionError
from moto.core.models import botocore_stubber

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# One lock for every entry into moto's backends in this process (in-process clients, the HTTP
# server, direct backend reads). Reentrant: an observer called under it may read the world.
MOTO_LOCK = threading.RLock()

ANY_ACTION = "*"
THROTTLE = "RequestLimitExceeded"
INTERNAL = "InternalError"
# Not an EC2 error code: the attempt fails as if the endpoint could not be reached.
UNREACHABLE = "EndpointConnectionError"

# EC2 answers throttling with 503; legacy botocore (the aws CLI v1) retries it only with that status.
_DEFAULT_STATUS = {THROTTLE: 503, INTERNAL: 500, "ServiceUnavailable": 503, "Unavailable": 503}
_MESSAGES = {
    THROTTLE: "Request limit exceeded.",
    INTERNAL: "An internal error has occurred.",
}
_FAULT_ATTR = "_tagjoin_fault"
_BIND_ID = "tagjoin-moto-bound"


def default_status(code: str) -> int:
    return _DEFAULT_STATUS.get(code, 400)


def error_xml(code: str, message: str, request_id: str) -> bytes:
    """The error document EC2's query API returns (what botocore's EC2 parser expects)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
        f"</Error></Errors><RequestID>{_xml(request_id)}</RequestID></Response>"
    ).encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_query(body: object) -> dict[str, str]:
    """EC2 query-protocol form fields (`Action`, `ResourceId.1`, `Tag.1.Key`…) of a request body."""
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", errors="replace")
    elif isinstance(body, str):
        text = body
    else:  # EC2 never streams a request body
        return {}
    return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))


def _indexed(params: Mapping[str, str], prefix: str) -> list[tuple[int, str]]:
    """Members `prefix.N` and `prefix.N.rest` in N order (the wire encoding of a list)."""
    found: list[tuple[int, str]] = []
    head = prefix + "."
    for key in params:
        if key.startswith(head):
            number, _, _rest = key[len(head) :].partition(".")
            if number.isdigit():
                found.append((int(number), key))
    return sorted(found)


@dataclass(frozen=True)
class Ec2Call:
    """One request attempt as it left a client (before moto or a fault answered it)."""

    action: str
    params: Mapping[str, str]  # query-protocol form fields, see `parse_query`
    client: str  # the label given to `attach`, "http" for the served endpoint
    at: float | None  # the injected clock's time, if the plane has a clock
    fault: str | None  # the error code injected instead of an answer from moto

    @property
    def resource_ids(self) -> tuple[str, ...]:
        """CreateTags/DeleteTags targets."""
        return tuple(self.params[k] for _, k in _indexed(self.params, "ResourceId") if k.count(".") == 1)

    @property
    def instance_ids(self) -> tuple[str, ...]:
        return tuple(self.params[k] for _, k in _indexed(self.params, "InstanceId") if k.count(".") == 1)

    @property
    def tags(self) -> tuple[tuple[str, str | None], ...]:
        """(key, value) pairs of CreateTags/DeleteTags; value None = DeleteTags without a value."""
        numbers = sorted({n for n, _ in _indexed(self.params, "Tag")})
        out: list[tuple[str, str | None]] = []
        for n in numbers:
            key = self.params.get(f"Tag.{n}.Key")
            if key is not None:
                out.append((key, self.params.get(f"Tag.{n}.Value")))
        return tuple(out)

    @property
    def filters(self) -> dict[str, tuple[str, ...]]:
        numbers = sorted({n for n, _ in _indexed(self.params, "Filter")})
        out: dict[str, tuple[str, ...]] = {}
        for n in numbers:
            name = self.params.get(f"Filter.{n}.Name")
            if name is not None:
                values = _indexed(self.params, f"Filter.{n}.Value")
                out[name] = tuple(self.params[k] for _, k in values)
        return out


@dataclass(frozen=True)
class CallStats:
    """Counts of request attempts by action and of injected faults, at one moment."""

    calls: Mapping[str, int] = field(default_factory=dict)
    faults: Mapping[str, int] = field(default_factory=dict)  # by action
    fault_codes: Mapping[str, int] = field(default_factory=dict)  # by error code

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_faults(self) -> int:
        return sum(self.faults.values())

    def since(self, earlier: CallStats) -> CallStats:
        """What happened between `earlier` and this snapshot (e.g. during one failover)."""
        return CallStats(
            _minus(self.calls, earlier.calls),
            _minus(self.faults, earlier.faults),
            _minus(self.fault_codes, earlier.fault_codes),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "faults": dict(sorted(self.faults.items())),
            "fault_codes": dict(sorted(self.fault_codes.items())),
            "total_calls": self.total_calls,
            "total_faults": self.total_faults,
        }


def _minus(now: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


class TokenBucket:
    """EC2's request-rate model: `capacity` tokens, refilled continuously in clock seconds.

    Each request takes one token; an empty bucket throttles. A throttled request takes none.
    """

    def __init__(
        self,
        capacity: float,
        refill_per_second: float,
        clock: Callable[[], float],
        *,
        initial: float | None = None,
    ) -> None:
        if capacity <= 0 or refill_per_second < 0:
            raise ValueError("token bucket needs capacity > 0 and refill_per_second >= 0")
        self.capacity = float(capacity)
        self.refill_per_second = float(refill_per_second)
        self._clock = clock
        self._tokens = self.capacity if initial is None else min(float(initial), self.capacity)
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_per_second)
        # A clock that is reset backwards (a new run) must not mint tokens later on.
        self._last = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


@dataclass
class _Count:
    remaining: int
    code: str
    status: int


@dataclass
class _Rate:
    rate: float
    code: str
    status: int
    rng: random.Random


@dataclass(frozen=True)
class Fault:
    """The answer given instead of moto's."""

    code: str
    status: int
    message: str
    request_id: str

    def body(self) -> bytes:
        return error_xml(self.code, self.message, self.request_id)


Observer = Callable[[Ec2Call], None]


class Ec2Faults:
    """Fault injection and call accounting for one simulated account.

    Decision order per attempt: counted faults armed for the action (then for `*`), then rate
    faults (one draw from the rate's random stream per attempt that reaches it), then the token
    bucket of the action (then of `*`).
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        on_call: Observer | None = None,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._observers: list[Observer] = [on_call] if on_call is not None else []
        self._lock = threading.Lock()
        self._counts: dict[str, list[_Count]] = {}
        self._rates: dict[str, _Rate] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._calls: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._codes: Counter[str] = Counter()
        self._request_seq = 0

    # -- wiring -------------------------------------------------------------------------------

    def attach(self, client: EC2Client, label: str = "") -> EC2Client:
        """Inject into and count the requests of `client`; returns it for chaining."""
        bind_to_moto(client)
        events: Any = client.meta.events  # the stubs type handlers as returning None

        def hook(request: AWSPreparedRequest, event_name: str = "", **_kw: Any) -> AWSResponse | None:
            return self._before_send(request, event_name, label)

        events.register("before-send.ec2", hook, unique_id=f"tagjoin-faults-{id(self)}-{label}")
        return client

    def add_observer(self, observer: Observer) -> None:
        """Called with every attempt, outside the plane's lock (it may read the world)."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        self._observers.remove(observer)

    # -- arming -------------------------------------------------------------------------------

    def arm(self, action: str, count: int = 1, *, code: str = THROTTLE, status: int | None = None) -> None:
        """The next `count` attempts of `action` (`*` = any) fail with `code`."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            queue = self._counts.setdefault(action, [])
            if count:
                queue.append(_Count(count, code, status or default_status(code)))

    def arm_rate(
        self,
        action: str,
        rate: float,
        *,
        code: str = THROTTLE,
        status: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Each attempt of `action` fails with probability `rate`, drawn from a seeded stream."""
        stream = rng or self._rng
        if stream is None:
            raise ValueError("a fault rate needs a random stream (rng=...) for determinism")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        with self._lock:
            self._rates[action] = _Rate(rate, code, status or default_status(code), stream)

    def throttle(self, bucket: TokenBucket | None, actions: Iterable[str] = (ANY_ACTION,)) -> None:
        """Put `actions` behind `bucket` (shared if given several); None removes the model."""
        with self._lock:
            for action in actions:
                if bucket is None:
                    self._buckets.pop(action, None)
                else:
                    self._buckets[action] = bucket

    def disarm(self, action: str | None = None) -> None:
        """Drop counted and rate faults (of one action, or all); buckets stay."""
        with self._lock:
            if action is None:
                self._counts.clear()
                self._rates.clear()
            else:
                self._counts.pop(action, None)
                self._rates.pop(action, None)

    def armed(self, action: str) -> int:
        """Counted faults still pending for `action`."""
        with self._lock:
            return sum(c.remaining for c in self._counts.get(action, []))

    def armed_summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": {a: sum(c.remaining for c in q) for a, q in self._counts.items() if q},
                "rates": {a: r.rate for a, r in self._rates.items()},
                "buckets": {a: round(b.tokens, 3) for a, b in self._buckets.items()},
            }

    # -- accounting ---------------------------------------------------------------------------

    def snapshot(self) -> CallStats:
        with self._lock:
            return CallStats(dict(self._calls), dict(self._faults), dict(self._codes))

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._codes.clear()

    # -- the decision, shared with the HTTP server ----------------------------------------------

    def intercept(self, action: str, params: Mapping[str, str], client: str = "") -> Fault | None:
        """Count one attempt, decide its fault, tell the observers. None = let moto answer."""
        with self._lock:
            self._calls[action] += 1
            fault = self._decide(action)
            if fault is not None:
                self._faults[action] += 1
                self._codes[fault.code] += 1
            observers = list(self._observers)
        call = Ec2Call(
            action,
            dict(params),
            client,
            self._clock() if self._clock else None,
            fault.code if fault else None,
        )
        for observer in observers:
            observer(call)
        return fault

    def _decide(self, action: str) -> Fault | None:
        for key in (action, ANY_ACTION):
            queue = self._counts.get(key)
            if queue:
                head = queue[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    queue.pop(0)
                return self._fault(head.code, head.status)
        for key in (action, ANY_ACTION):
            rate = self._rates.get(key)
            if rate is not None:
                if rate.rng.random() < rate.rate:
                    return self._fault(rate.code, rate.status)
                break
        bucket = self._buckets.get(action) or self._buckets.get(ANY_ACTION)
        if bucket is not None and not bucket.try_take():
            return self._fault(THROTTLE, default_status(THROTTLE))
        return None

    def _fault(self, code: str, status: int) -> Fault:
        # Deterministic request ids: a replayed seed must produce byte-identical answers.
        self._request_seq += 1
        request_id = f"00000000-0000-4000-8000-{self._request_seq:012x}"
        return Fault(code, status, _MESSAGES.get(code, f"Injected {code}."), request_id)

    def _before_send(self, request: AWSPreparedRequest, event_name: str, label: str) -> AWSResponse | None:
        action = event_name.rsplit(".", 1)[-1]
        fault = self.intercept(action, parse_query(request.body), label)
        if fault is None:
            return None
        setattr(request, _FAULT_ATTR, fault.code)
        if fault.code == UNREACHABLE:
            raise EndpointConnectionError(endpoint_url=request.url)
        body = fault.body()
        headers = HTTPHeaders()
        headers["Content-Type"] = "text/xml;charset=UTF-8"
        headers["Content-Length"] = str(len(body))
        headers["x-amzn-RequestId"] = fault.request_id
        return AWSResponse(request.url, fault.status, headers, _Body(body))


class _Body:
    """The raw-stream interface AWSResponse reads a body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


def _moto_send(request: AWSPreparedRequest, event_name: str = "", **kwargs: Any) -> AWSResponse | None:
    if getattr(request, _FAULT_ATTR, None) is not None:
        return None  # a fault already answered: moto must not apply the request
    with MOTO_LOCK:
        # moto answers with a fully read body, so nothing of moto runs after the lock is released.
        # None (mock inactive or a non-AWS URL such as the loopback server) means a real send.
        response: AWSResponse | None = botocore_stubber(event_name=event_name, request=request, **kwargs)
        return response


def bind_to_moto(client: EC2Client) -> EC2Client:
    """Route `client`'s in-process moto traffic through `MOTO_LOCK`, honouring injected faults.

    Idempotent. Harmless for clients with a loopback `endpoint_url`: moto declines those and the
    request goes over HTTP as usual.
    """
    events: Any = client.meta.events
    events.unregister("before-send", botocore_stubber)
    # Last among the EC2-specific handlers, so fault hooks registered later still run first.
    events.register_last("before-send.ec2", _moto_send, unique_id=_BIND_ID)
    return client


def http_status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"
