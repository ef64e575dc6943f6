"""core's `Ec2Api` straight onto moto's EC2 backend: the simulator's sweeps without botocore or moto's HTTP layer.

`BotoEc2` over a client bound to moto (the reference path, `sim serve`, the console demo) spends
most of each call outside EC2's logic: botocore builds, signs and serialises the request and parses
moto's XML back; moto parses the query, dispatches, and renders the answer from its service
model. `MotoDirectEc2` makes the same calls on the same moto models (`moto.ec2` backends: filters,
pagination, tag semantics, error classes), and builds core's `InstancePage`/`TagPage` from the
models as `BotoEc2` builds them from the parsed answer. What it reproduces of the layers it skips,
each beside the moto code it mirrors:

- the request as the fault plane sees it: the query-protocol form fields botocore would send
  (`Ec2Call.params`), offered to `Ec2Faults.intercept` first, so counts, observers and armed
  faults are the same on both paths, and a faulted request never reaches moto;
- moto's response layer for these four actions (moto/ec2/responses/instances.py
  `describe_instances`, moto/ec2/responses/tags.py): its parameter checks, its pagination by
  reservation (`MaxResults` default 100, `NextToken` = the last reservation's id; DescribeTags has
  none, so `MaxResults`/`NextToken` are ignored there as moto ignores them);
- the request id every answer draws from moto's seeded random stream
  (moto/core/responses.py `_enrich_response`): ids and IPs launched later in a run stay what the
  botocore path would give them;
- the errors as `tagjoin.core.aws.boto_ec2._translated` raises them: moto's `ServiceException` is an
  `ApiFault` with its code, HTTP 400 and message; anything else moto raises an `Ec2Error` worded
  the same way.

Caches around moto, never inside it (moto's models stay the only state, and moto's code judges
every filter): while moto filters instances for one of our describes, an instance's tags are read
from the backend's tag table by id (`_tags_by_id`) instead of a scan of the region's, and a describe
whose filters name exact ids, IPs or tag keys hands moto only the reservations that can pass
(`_narrowed`), instead of every instance of the account, each listing its tags by a scan of
every tag in the region. A describe asked again while every instance's state, addresses and
tags are as they were (the pages of one listing, every booting node listing the cluster) reuses
the reservations moto judged the first time (`_judged`): comparing the instances costs far less
than moto's filter code, which would otherwise make a boot cost the size of the cluster
squared. tests/test_sim_moto_direct.py drives both paths with the same random call sequences and
requires identical answers, pages, errors, calls and random streams.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any, TypeVar

from moto.core.exceptions import ServiceException
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2 import utils as moto_ec2_utils
from moto.ec2.models import ec2_backends, validate_resource_ids
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, filter_reservations, get_prefix
from moto.moto_api._internal import mock_random

from tagjoin.core.aws.boto_ec2 import _describe
from tagjoin.core.aws.ec2_api import (
    CREATE_TAGS,
    DELETE_TAGS,
    DESCRIBE,
    DESCRIBE_TAGS,
    ApiFault,
    Filter,
    InstancePage,
    TagEntry,
    TagPage,
    TransportFault,
)
from tagjoin.core.errors import Ec2Error
from tagjoin.core.model import Instance
from tagjoin.sim.aws import moto_writes
from tagjoin.sim.aws.ec2_faults import MOTO_LOCK, UNREACHABLE, Ec2Faults
from tagjoin.sim.aws.moto_writes import memo, write_count

T = TypeVar("T")

API_VERSION = "2016-11-15"  # botocore's EC2 model: the Version field of every query request
# The status botocore reports for moto's EC2 errors: moto's serializer falls back to its default
# error status, since EC2's model defines no error shapes (moto/core/serialize.py).
ERROR_STATUS = 400
DEFAULT_MAX_RESULTS = 100  # moto/ec2/responses/instances.py describe_instances
REQUEST_ID_LENGTH = 52  # moto/utilities/aws_headers.py gen_amzn_requestid_long
_WILDCARD = re.compile(r"[*?\[\]]")


class MotoDirectEc2:
    """`Ec2Api` on moto's EC2 backend of `region`, behind the fault/accounting plane `faults`.

    `label` names the caller in the plane's `Ec2Call`s, as `Ec2Faults.attach(client, label)` does.
    `max_results` asks for pages of that many reservations, as a client passing `MaxResults` to
    every DescribeInstances without instance ids (EC2 refuses the two together) and to every
    DescribeTags would; core passes none, so by default moto's 100 applies.
    """

    def __init__(
        self,
        region: str,
        faults: Ec2Faults | None = None,
        label: str = "",
        *,
        max_results: int | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.region = region
        self.faults = faults
        self.label = label
        self.max_results = max_results
        self.account_id = account_id
        self.endpoint_url = f"https://ec2.{region}.amazonaws.com/"

    @property
    def backend(self) -> Any:
        return region_backend(self.account_id, self.region)

    # -- Ec2Api -----------------------------------------------------------------------------------

    def describe_instances(
        self, filters: Sequence[Filter], instance_ids: Sequence[str] = (), next_token: str | None = None
    ) -> InstancePage:
        params = _base(DESCRIBE)
        _put_filters(params, filters)
        _put_list(params, "InstanceId", instance_ids)
        if self.max_results is not None and not instance_ids:
            params["MaxResults"] = str(self.max_results)
        if next_token:
            params["NextToken"] = next_token
        return self._call(
            DESCRIBE, params, lambda: self._describe_instances(filters, list(instance_ids), next_token or None)
        )

    def describe_tags(self, filters: Sequence[Filter], next_token: str | None = None) -> TagPage:
        params = _base(DESCRIBE_TAGS)
        _put_filters(params, filters)
        if self.max_results is not None:
            params["MaxResults"] = str(self.max_results)
        if next_token:
            params["NextToken"] = next_token
        return self._call(DESCRIBE_TAGS, params, lambda: self._describe_tags(filters))

    def create_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        ids = list(instance_ids)
        self._call(CREATE_TAGS, _tag_params(CREATE_TAGS, ids, key, value), lambda: self._create_tags(ids, key, value))

    def delete_tags(self, instance_ids: Sequence[str], key: str, value: str) -> None:
        ids = list(instance_ids)
        self._call(DELETE_TAGS, _tag_params(DELETE_TAGS, ids, key, value), lambda: self._delete_tags(ids, key, value))

    # -- the plane, moto, and errors as _translated gives them ------------------------------------

    def _call(self, action: str, params: dict[str, str], fn: Callable[[], T]) -> T:
        if self.faults is not None:
            fault = self.faults.intercept(action, params, self.label)
            if fault is not None:
                if fault.code == UNREACHABLE:
                    # botocore's EndpointConnectionError, as _translated words it
                    raise TransportFault(f'Could not connect to the endpoint URL: "{self.endpoint_url}"')
                raise ApiFault(fault.code, fault.status, fault.message)
        with MOTO_LOCK:
            try:
                result = fn()
            except ServiceException as exc:
                answered()  # moto names its error answers too
                raise ApiFault(str(exc.code), ERROR_STATUS, str(exc.message)) from None
            except Exception as exc:
                if moto_writes.CHECK and isinstance(exc, AssertionError):
                    raise  # a change that was not counted: a bug of ours, not an answer of EC2's
                # moto's answer to what it does not handle is an exception out of the client call
                raise Ec2Error(f"EC2 {action} failed: {_describe(exc)}") from None
            answered()
        return result

    # -- moto/ec2/responses, on the models --------------------------------------------------------

    def _describe_instances(
        self, filters: Sequence[Filter], instance_ids: list[str], token: str | None
    ) -> InstancePage:
        backend = self.backend
        filter_dict = _filter_dict(filters)
        # EC2 refuses MaxResults beside InstanceIds (InvalidParameterCombination): by ids, one page of moto's size.
        max_results = DEFAULT_MAX_RESULTS if self.max_results is None or instance_ids else self.max_results
        if instance_ids:
            with _tags_by_id():
                judged = Judged(backend.get_reservations_by_instance_ids(instance_ids, filters=filter_dict))
        else:
            judged = _judged(backend, filter_dict)
        answer = judged.pages.get((token, max_results))
        if answer is None:
            answer = judged.pages[(token, max_results)] = judged.page(backend.tags, token, max_results)
        found, next_token = answer
        return InstancePage(list(found), next_token)

    def _describe_tags(self, filters: Sequence[Filter]) -> TagPage:
        # moto scans every tag of the region for each call; its rows stand while nothing is written.
        backend = self.backend
        state = write_count(backend).state
        key = repr(filters)
        known = memo(backend, "tag_rows")  # filters → (moto's write count then, the rows)
        cached = known.get(key)
        if cached is None or cached[0] != state or moto_writes.CHECK:
            rows = backend.describe_tags(filters=_filter_dict(filters))
            entries = [TagEntry(r["resource_id"], r["key"], r["value"]) for r in rows]
            if moto_writes.CHECK and cached is not None and cached[0] == state and cached[1] != entries:
                raise AssertionError("moto's tags changed without a counted write")
            cached = known[key] = (state, entries)
        return TagPage(list(cached[1]), None)

    def _create_tags(self, ids: list[str], key: str, value: str) -> None:
        validate_resource_ids(ids)
        backend = self.backend
        backend.do_resources_exist(ids)
        backend.create_tags(ids, {key: value})

    def _delete_tags(self, ids: list[str], key: str, value: str) -> None:
        validate_resource_ids(ids)
        self.backend.delete_tags(ids, {key: value})


def region_backend(account_id: str, region: str) -> Any:
    """`ec2_backends[account_id][region]`, read as plain dicts once both levels exist.

    moto's own lookups search its list of backend dicts on every call
    (moto/core/base_backend.py `BackendDict._create_account_specific_backend`), which cost more
    than a page of a describe whose answer is cached; a level that is missing is built by them."""
    regions = dict.get(ec2_backends, account_id)
    backend = dict.get(regions, region) if regions is not None else None
    return backend if backend is not None else ec2_backends[account_id][region]


def answered() -> None:
    """Move moto's seeded stream on as the request id of an answer does, without the id.

    moto/core/responses.py `_enrich_response` names every answer with `gen_amzn_requestid_long`:
    52 `choice`s from 62 letters and digits. Each `choice` takes `getrandbits(6)` (the top 6 bits of
    one 32-bit word of the generator) until a value below 62 comes up (random.py
    `_randbelow_with_getrandbits`). The same words are taken here a batch at a time: a batch of as
    many words as choices are still due, then one for each rejected value, so the last word taken is
    the one that completes the 52nd choice, as in moto. tests/test_sim_moto_direct.py compares the
    generator's state after both paths.
    """
    rng = mock_random
    due = REQUEST_ID_LENGTH
    while due:
        # Word i is bytes 4i..4i+3 of the little-endian number; its top 6 bits are 62 or 63 (a
        # rejected value, taken again) exactly when its top byte is 248 or more.
        top_bytes = rng.getrandbits(32 * due).to_bytes(4 * due, "little")[3::4]
        due = len(top_bytes.translate(None, _ACCEPTED_TOP_BYTES))


_ACCEPTED_TOP_BYTES = bytes(range(248))  # what `answered` deletes to count the rejected words


def resource_id(size: int = 8) -> str:
    """moto/ec2/utils.py `random_resource_id`, the same digits from the same draws, taken as
    `answered` takes them.

    Every EC2 id moto makes (`random_id`: a VPC's, a subnet's, an instance's, its interface's and
    volume's) is `size` `mock_random.choice`s of 16 hex digits, a world some hundred of them. Each
    `choice` takes `getrandbits(5)`, the top 5 bits of one 32-bit word, until a value below 16 comes
    up: a word whose top bit is clear, whose next 4 bits are the digit. Batches of as many words as
    digits are still due end on the word that completes the last digit, as one word at a time would.
    tests/test_sim_moto_direct.py compares ids and the generator's state after both.
    """
    rng = mock_random
    digits: list[str] = []
    due = size
    while due:
        for top in rng.getrandbits(32 * due).to_bytes(4 * due, "little")[3::4]:
            if top < 128:
                digits.append(_HEX_DIGITS[top >> 3])
        due = size - len(digits)
    return "".join(digits)


_HEX_DIGITS = "0123456789abcdef"  # moto/ec2/utils.py HEX_CHARS


@contextmanager
def drawn_in_batches() -> Iterator[None]:
    """moto's EC2 ids made by `resource_id` (call under MOTO_LOCK); moto's own function is back after."""
    original = moto_ec2_utils.random_resource_id
    moto_ec2_utils.random_resource_id = resource_id
    try:
        yield
    finally:
        moto_ec2_utils.random_resource_id = original


# -- requests as botocore serialises them (EC2 query protocol) ------------------------------------


def _base(action: str) -> dict[str, str]:
    return {"Action": action, "Version": API_VERSION}


def _put_list(params: dict[str, str], prefix: str, values: Sequence[str]) -> None:
    # The EC2 serializer leaves an empty list out altogether (botocore/serialize.py EC2Serializer).
    for i, value in enumerate(values, 1):
        params[f"{prefix}.{i}"] = value


def _put_filters(params: dict[str, str], filters: Sequence[Filter]) -> None:
    for i, f in enumerate(filters, 1):
        params[f"Filter.{i}.Name"] = f["Name"]
        _put_list(params, f"Filter.{i}.Value", f["Values"])


def _tag_params(action: str, ids: Sequence[str], key: str, value: str) -> dict[str, str]:
    params = _base(action)
    _put_list(params, "ResourceId", ids)
    params["Tag.1.Key"] = key
    params["Tag.1.Value"] = value
    return params


def _filter_dict(filters: Sequence[Filter]) -> dict[str, list[str]]:
    """moto's `_filters_from_querystring`: name → values, a repeated name's last values win."""
    return {f["Name"]: list(f["Values"]) for f in filters}


# -- answers as BotoEc2 reads them ----------------------------------------------------------------


def _instance(raw: Any, tags: Mapping[str, Mapping[str, str]]) -> Instance:
    launched = raw.launch_time
    return Instance(
        instance_id=raw.id,
        private_ip=raw.private_ip or None,
        public_ip=raw.public_ip or None,
        state=raw.state or "unknown",
        tags=dict(tags.get(raw.id) or {}),
        zone=raw.placement.zone or None,
        instance_type=raw.instance_type or None,
        # moto renders its naive UTC time to the second and botocore parses it back with tzutc()
        launch_time=launched.replace(microsecond=0, tzinfo=UTC).isoformat() if launched is not None else None,
    )


# -- caches around moto -----------------------------------------------------------------------------


def _narrowed(backend: Any, filter_dict: dict[str, list[str]]) -> list[Any]:
    """moto's `describe_instances(filters=…)`, with the candidates narrowed first by what must hold.

    moto tests every instance of the account against the filters, and each tag filter lists the
    instance's tags by scanning every tag of the region (`TaggedEC2Resource.get_tags` is a
    `describe_tags` with a pattern per resource). Some filters can only pass instances that a dict
    lookup finds: `instance-id` and `private-ip-address` compare by equality
    (moto/ec2/utils.py `instance_value_in_filter_values`), and `tag-key` / `tag:K` need the
    instance to carry a key named in the filter when the names have no wildcard
    (`tag_filter_matches`: a wildcard-free pattern matches only itself). Only reservations holding
    such a candidate go through moto's own `filter_reservations`, in the backend's order, as
    copies as moto makes them: the same answer, judged by moto, without the scan.
    """
    ids = filter_dict.get("instance-id")
    wanted_ids = None if ids is None else set(ids)
    ips = filter_dict.get("private-ip-address")
    wanted_ips = None if ips is None else set(ips)
    keys = _required_tag_keys(filter_dict)
    holders = (
        None
        if keys is None
        else {rid for rid, tags in backend.tags.items() if all(not k.isdisjoint(tags) for k in keys)}
    )
    if wanted_ids is None and wanted_ips is None and holders is None:
        everything: list[Any] = backend.describe_instances(filters=filter_dict)
        return everything
    candidates = []
    for reservation in backend.reservations.values():
        for i in reservation.instances:
            if (
                (wanted_ids is None or i.id in wanted_ids)
                and (wanted_ips is None or i.private_ip in wanted_ips)
                and (holders is None or i.id in holders)
            ):
                candidates.append(copy.copy(reservation))
                break
    return filter_reservations(candidates, filter_dict)


class Judged:
    """The reservations moto passed for one describe's filters, and what was answered from them:
    the `Instance` built for each instance id (frozen) and each page, by token and size."""

    __slots__ = ("_starts", "built", "pages", "reservations")

    def __init__(self, reservations: list[Any]) -> None:
        self.reservations = reservations
        self.built: dict[str, Instance] = {}
        self.pages: dict[tuple[str | None, int], tuple[list[Instance], str | None]] = {}
        self._starts: dict[str, int] | None = None

    def page(
        self, tags: Mapping[str, Mapping[str, str]], token: str | None, size: int
    ) -> tuple[list[Instance], str | None]:
        """moto's paging: a page of reservations from the one after `token`, the last one's id as the next token."""
        reservations = self.reservations
        start = 0
        if token:
            if self._starts is None:
                self._starts = {}
                for i, reservation in enumerate(reservations):
                    self._starts.setdefault(reservation.id, i + 1)
            start = self._starts.get(token, -1)
            if start < 0:
                raise ValueError(f"{token!r} is not in list")  # list.index, as moto's paging meets it
        page = reservations[start : start + size]
        next_token = page[-1].id if size and len(reservations) > start + size else None
        built = self.built
        found = []
        for reservation in page:
            for raw in reservation.instances:
                instance = built.get(raw.id)
                if instance is None:
                    instance = built[raw.id] = _instance(raw, tags)
                found.append(instance)
        return found, next_token


def _judged(backend: Any, filter_dict: dict[str, list[str]]) -> Judged:
    """`_narrowed`, or its last answer to the same filters while moto has not been written to since
    (tagjoin.sim.aws.moto_writes), with what was answered from it."""
    state = write_count(backend).state
    key = repr(sorted(filter_dict.items()))
    known = memo(backend, "judged")  # filters → (moto's write count then, what moto judged)
    cached = known.get(key)
    looks = memo(backend, "looks").get(key) if moto_writes.CHECK else None
    if cached is not None and cached[0] == state and (looks is not None or not moto_writes.CHECK):
        if looks is not None and looks != _looks(backend):
            raise AssertionError("moto's instances changed without a counted write")
        found: Judged = cached[1]
        return found
    with _tags_by_id():  # only moto's filter code lists tags; a remembered answer does not
        judged = Judged(_narrowed(backend, filter_dict))
    known[key] = (state, judged)
    if moto_writes.CHECK:
        memo(backend, "looks")[key] = _looks(backend)  # what every instance looked like then
    return judged


def _looks(backend: Any) -> list[Any]:
    """All that our filters and answers read of each instance (the rest is fixed at launch)."""
    tags = backend.tags
    return [
        (raw.id, raw._state.name, nic.private_ip_address, nic.public_ip, dict(tags.get(raw.id) or {}))
        for reservation in backend.reservations.values()
        for raw in reservation.instances
        for nic in (raw.nics[0],)
    ]


def _tags_of(resource: Any) -> list[dict[str, str]]:
    """`TaggedEC2Resource.get_tags` (moto/ec2/models/core.py) by a dict lookup.

    moto answers it with `describe_tags(filters={"resource-id": [id]})`: every tag of the region,
    each resource id matched against a pattern made from this id (no id holds a wildcard, so the
    pattern is the id itself), rows in the table's order. The same rows, from the same table.
    """
    rid = resource.id
    tags = resource.ec2_backend.tags.get(rid) if rid else None
    if not tags:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
    return [{"resource_id": rid, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]


@contextmanager
def _tags_by_id() -> Iterator[None]:
    """While moto's filter code judges instances for one describe of ours, each instance lists its
    tags with `_tags_of`. Only under `MOTO_LOCK` (every entry into moto takes it), so no other
    caller ever meets the substitute; moto's own method is back when the call returns."""
    original = TaggedEC2Resource.__dict__["get_tags"]
    TaggedEC2Resource.get_tags = _tags_of  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        TaggedEC2Resource.get_tags = original  # type: ignore[method-assign]


def _required_tag_keys(filter_dict: dict[str, list[str]]) -> tuple[frozenset[str], ...] | None:
    """For each filter that needs one: the tag keys of which a passing instance carries at least
    one (filters are ANDed, so it carries one of each); None if no filter says so."""
    required: list[frozenset[str]] = []
    for name, values in filter_dict.items():
        if name == "tag-key":
            if not values or any(_WILDCARD.search(v) for v in values):
                continue
            required.append(frozenset(values))
        elif name.startswith("tag:"):
            required.append(frozenset({name[4:]}))
    return tuple(required) or None
