"""An httpx client whose requests a simulated agent answers in process, without httpx's per-request machinery.

core's `ConsulClient` asks its httpx client for `request(method, path, params=…, timeout=…)` and
reads the `httpx.Response` it gets back. Over `AgentApi.transport_for` (an `httpx.MockTransport`)
each such request costs httpx's whole client path: the URL merged with the base URL and parsed
three times, the query encoded, auth, redirect and cookie handling, then the transport parsing the
URL back into an `ApiRequest`. In a sweep that is most of a scenario's time: every keeper polls its
agent twice a second of virtual time.

`InProcessHttp.request` hands the same request to the same `AgentApi.handle` directly — the
`ApiRequest` the transport would have parsed (path percent-decoded, the query as lists, the
client's own headers) — and answers with the same `httpx.Response` (status, headers, body) or the
same httpx exception (`ConnectError` for a crashed agent, `ReadTimeout` for a paused one). Anything
it does not know how to shortcut (a body, extra headers, a query in the URL) goes through httpx as
before. The client stays an `httpx.Client` on the agent's transport, so whatever else uses it takes
the ordinary path. tests/test_sim_consul_in_process.py checks that a scenario's trace is the same,
byte for byte, on this client and on the httpx transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote

import httpx

from tagjoin.core.consul.settings import ConsulSettings, build_http_client
from tagjoin.sim.consul.http_api import AgentApi, AgentUnavailable, ApiRequest, ApiResponse

# What `ConsulClient` passes; anything more takes httpx's own path.
_SHORTCUT_KWARGS = frozenset({"params", "timeout"})
_KEPT_REQUESTS = 256


class InProcessHttp(httpx.Client):
    """The httpx client of a `ConsulClient` talking to agent `node` of `api` (see the module)."""

    def __init__(self, api: AgentApi, node: str, settings: ConsulSettings) -> None:
        # The client production would build on the agent's transport: its headers, base URL and
        # settings, and the path every request takes that is not shortcut.
        real = _production_client(settings)
        super().__init__(
            base_url=real.base_url,
            transport=api.transport_for(node),
            headers=real.headers,
            timeout=real.timeout,
            trust_env=False,
            follow_redirects=False,
            event_hooks=real.event_hooks,
        )
        self._api = api
        self._node = node
        self._request_headers = _request_headers(settings)
        # A keeper asks the same few things twice a second of virtual time; nothing changes a
        # request once built, so each is parsed once.
        self._requests: dict[tuple[str, str, tuple[tuple[Any, Any], ...]], ApiRequest] = {}

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        if not isinstance(url, str) or "?" in url or "#" in url or not kwargs.keys() <= _SHORTCUT_KWARGS:
            return super().request(method, url, **kwargs)
        params = kwargs.get("params")
        # httpx writes a value that is not a string its own way (True as "true"), and 1 and True
        # would share a key: only string parameters, which are all `ConsulClient` sends, are shortcut.
        if params:
            for k, v in params.items():
                if type(k) is not str or type(v) is not str:
                    return super().request(method, url, **kwargs)
        key = (method, url, tuple(params.items()) if params else ())
        req = self._requests.get(key)
        if req is None:
            if len(self._requests) >= _KEPT_REQUESTS:
                self._requests.clear()
            # Kept and handed out again: read-only, as `_without_headers` keeps its requests.
            query = MappingProxyType({k: (v,) for k, v in params.items()} if params else {})
            req = self._requests[key] = ApiRequest(method.upper(), unquote(url), query, self._request_headers)
        try:
            result = self._api.handle(self._node, req)
        except AgentUnavailable as exc:
            # as AgentApi._serve_httpx raises them under the transport
            if exc.refused:
                raise httpx.ConnectError("[Errno 111] Connection refused") from None
            raise httpx.ReadTimeout("timed out") from None
        assert isinstance(result, ApiResponse)  # may_block=False never blocks
        return _response(result)


# Every handler of a run gets a client, and each client is built from the same few settings: what
# production's client is made of, and the headers a request carries, are worked out once a setting.
@lru_cache(maxsize=64)
def _production_client(settings: ConsulSettings) -> httpx.Client:
    """Production's client for `settings`, never sent a request: the parts `InProcessHttp` copies."""
    return build_http_client(settings, httpx.MockTransport(_never_called))


@lru_cache(maxsize=64)
def _request_headers(settings: ConsulSettings) -> Mapping[str, str]:
    """The headers the transport would see on a request, as `ApiRequest.build` keeps them."""
    probe = _production_client(settings).build_request("GET", "/")
    return MappingProxyType({k.lower(): v for k, v in dict(probe.headers).items()})


def _never_called(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a kept client sent {request.method} {request.url}")


# Answers repeat their headers (agent/self's always; a settled leader's health answers too), and
# httpx normalises every header of a new `Headers` one by one: each set is built once and copied.
_headers_built: dict[tuple[tuple[str, str], ...], httpx.Headers] = {}
_KEPT_HEADERS = 1024


def _response(result: ApiResponse) -> httpx.Response:
    """`httpx.Response(status, headers=…, content=body)`, as the transport answers, read at once.

    The same object, built without httpx's body machinery (a stream read chunk by chunk through
    its decoders): the headers `content=` would add, and the body where `read()` keeps it.
    """
    body = result.body
    key = (*result.headers.items(), ("Content-Length", str(len(body))))
    headers = _headers_built.get(key)
    if headers is None:
        if len(_headers_built) >= _KEPT_HEADERS:
            _headers_built.clear()
        headers = _headers_built[key] = httpx.Headers(dict(key))
    # `Response` copies the headers it is given, so the kept set is never the one handed out. The
    # copy would work its encoding out again, header by header, at its first read: it is the kept
    # set's, which depends on the same bytes only.
    response = httpx.Response(result.status, headers=headers, stream=httpx.ByteStream(body))
    response.headers.encoding = headers.encoding
    response._content = body
    response.is_stream_consumed = True
    response.is_closed = True  # as httpx's client leaves a response it has read
    return response
