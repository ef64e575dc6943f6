"""The EC2 tag store: the only code in core that reads or writes leader tags.

Reads and writes are always limited to the cluster scope (docs/design.md §2). Retrying is ours, not the
client library's: the simulator runs this code in virtual time, so every backoff has to go through
the injected clock and draw its jitter from the injected random stream.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from tagjoin.core.aws.ec2_api import (
    CREATE_TAGS,
    DELETE_TAGS,
    DESCRIBE,
    DESCRIBE_TAGS,
    ApiFault,
    Ec2Api,
    Filter,
    InstancePage,
    TagEntry,
    TagPage,
    TransportFault,
)
from tagjoin.core.clock import Clock
from tagjoin.core.errors import ConfigError, Ec2Denied, Ec2Error, Ec2Throttled, InstanceNotFound
from tagjoin.core.model import Instance
from tagjoin.core.settings import Scope
from tagjoin.core.text import one_line

log = logging.getLogger(__name__)

T = TypeVar("T")
PageT = TypeVar("PageT", InstancePage, TagPage)

THROTTLING_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "EC2ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
    }
)
# Server-side failures that EC2 itself documents as safe to retry.
TRANSIENT_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout"})
# Codes that mean "this permission is missing", as opposed to credentials that are not valid.
PERMISSION_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
# The request was signed at a time EC2 does not accept: this host's clock is off.
CLOCK_CODES = frozenset({"RequestExpired", "RequestTimeTooSkewed", "RequestInTheFuture"})
# The credentials themselves are wrong, expired or unknown.
CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)
DENIED_CODES = PERMISSION_CODES | CLOCK_CODES | CREDENTIAL_CODES | {"OptInRequired"}
# SignatureDoesNotMatch also stands for a skewed clock: "Signature expired: 20240101T000000Z is now
# earlier than …", "Signature not yet current: …".
_CLOCK_WORDS = ("signature expired", "not yet current", "is now earlier than", "is now later than", "time")
# Every state but terminated: a stopped or pending instance still owns its private IP.
LIVE_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
# A read of 100,000 pages is no lookup any more; EC2 pages hold up to 1,000 items.
MAX_PAGES = 100_000
# EC2 refuses a request whose filters hold more than 200 values in all (FilterLimitExceeded).
_MAX_FILTER_VALUES = 200


@dataclass
class Ec2Stats:
    """What this store asked of EC2.

    `calls` counts logical requests (one per page or write) by API action; `attempts` counts
    every HTTP attempt including retries, which is what EC2's throttling buckets see.
    """

    calls: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    throttled: int = 0
    server_errors: int = 0  # 5xx and connection failures that were retried or gave up
    errors: int = 0  # logical requests that ended in an exception

    def snapshot(self) -> Ec2Stats:
        return Ec2Stats(
            calls=Counter(self.calls),
            attempts=self.attempts,
            throttled=self.throttled,
            server_errors=self.server_errors,
            errors=self.errors,
        )

    def since(self, earlier: Ec2Stats) -> Ec2Stats:
        """What happened after `earlier` was snapshotted, e.g. the calls of one handoff pass."""
        calls = Counter(self.calls)
        calls.subtract(earlier.calls)
        return Ec2Stats(
            calls=+calls,  # unary plus drops actions with no new calls
            attempts=self.attempts - earlier.attempts,
            throttled=self.throttled - earlier.throttled,
            server_errors=self.server_errors - earlier.server_errors,
            errors=self.errors - earlier.errors,
        )

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "attempts": self.attempts,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "errors": self.errors,
        }


class _Retryable(Exception):
    """An attempt failed in a way that may succeed later."""

    def __init__(self, reason: str, *, throttled: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.throttled = throttled


class TagStore:
    """Reads instances and writes leader tags, always within `scope`.

    Writes take instance ids that came out of this store's scoped reads; the store does not
    re-read before writing, because that would double the EC2 calls of every handoff.
    """

    def __init__(
        self,
        api: Ec2Api,
        scope: Scope,
        *,
        clock: Clock,
        rng: random.Random,
        max_attempts: int = 4,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ConfigError(f"EC2 max attempts must be at least 1, got {max_attempts}")
        self.api = api
        self.scope = scope
        self._clock = clock
        self._rng = rng
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stats = Ec2Stats()
        self.tag_index_denied = False  # DescribeTags was refused; see tagged_instances_by_tag_index

    @property
    def rng(self) -> random.Random:
        """The store's random stream (injected): a caller's own backoff jitter draws from it too."""
        return self._rng

    # -- reads -------------------------------------------------------------------------------

    def instances(
        self,
        extra_filters: Iterable[Filter] = (),
        states: Sequence[str] | None = ("running",),
    ) -> list[Instance]:
        """Instances in scope matching `extra_filters`; `states=None` means any state."""
        # The caller's filters are the selective ones; a server that stops at the first failing
        # filter (moto does) then never evaluates the cluster tag for the rest of the account.
        filters = [*extra_filters, *self._scope_filters()]
        if states is not None:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        return self._describe(filters=filters)

    def tagged_instances(
        self,
        *,
        key: str | None = None,
        value: str | None = None,
        states: Sequence[str] | None = ("running",),
    ) -> list[Instance]:
        """Instances in scope carrying tag `key` (the leader tag by default), optionally `=value`."""
        return self.instances([_tag_filter(key or self.scope.tag_key, value)], states=states)

    def tagged_instances_by_tag_index(
        self,
        *,
        key: str | None = None,
        value: str | None = None,
        states: Sequence[str] | None = ("running",),
    ) -> list[Instance]:
        """The same answer as `tagged_instances`, asked in two steps: the tag's holders, then their instances.

        DescribeTags answers from the tags alone, so the cost of the lookup follows the number of
        holders rather than the number of instances in the account; the price is a second call.
        A booting node uses this: it runs on every node of the account, while the holders are few.
        """
        tag_key = key or self.scope.tag_key
        if self.tag_index_denied:
            return self.tagged_instances(key=key, value=value, states=states)
        wanted: list[Filter] = [
            {"Name": "resource-type", "Values": ["instance"]},
            {"Name": "key", "Values": [tag_key]},
        ]
        if value is not None:
            wanted.append({"Name": "value", "Values": [value]})
        try:
            entries = self._tag_entries(wanted)
        except Ec2Denied as exc:
            if exc.code not in PERMISSION_CODES:
                raise
            # A role granted before DescribeTags was needed must not stop nodes from booting.
            log.warning("%s; looking up the tag with DescribeInstances alone", exc)
            self.tag_index_denied = True
            return self.tagged_instances(key=key, value=value, states=states)
        holders = sorted({tag.resource_id for tag in entries})
        tag_filter = _tag_filter(tag_key, value)
        # The holders of every cluster in the account, so possibly many: as many ids a call as the
        # filter limit leaves room for beside the tag, scope and state filters.
        others = [tag_filter, *self._scope_filters()]
        room = max(1, _MAX_FILTER_VALUES - sum(len(f["Values"]) for f in others) - len(states or ()))
        found: list[Instance] = []
        for start in range(0, len(holders), room):
            # A filter, not InstanceIds: an id that has gone since DescribeTags must not fail the lookup.
            by_id: Filter = {"Name": "instance-id", "Values": holders[start : start + room]}
            found.extend(self.instances([by_id, tag_filter], states=states))
        return found

    def instance_by_ip(self, ip: str) -> Instance:
        """This cluster's one non-terminated instance with private IP `ip`.

        Private IPs are unique only within a VPC, so the scope is what makes the answer unique;
        when it does not, we refuse to guess rather than tag the wrong machine.
        """
        found = self.instances([{"Name": "private-ip-address", "Values": [ip]}], states=LIVE_STATES)
        if not found:
            raise InstanceNotFound(
                f"no instance of {self._scope_name()} has private IP {ip}; "
                "set TAGJOIN_INSTANCE_ID or check the cluster tag"
            )
        if len(found) > 1:
            ids = ", ".join(sorted(i.instance_id for i in found))
            raise Ec2Error(
                f"{len(found)} instances of {self._scope_name()} have private IP {ip} ({ids}); "
                "set TAGJOIN_INSTANCE_ID to say which one is this node"
            )
        return found[0]

    def instance_by_id(self, instance_id: str) -> Instance:
        """The instance `instance_id` in any state, provided it is inside the scope."""
        try:
            found = self._describe(instance_ids=[instance_id], filters=self._scope_filters())
        except InstanceNotFound:
            found = []
        if not found:
            raise InstanceNotFound(
                f"instance {instance_id} is unknown or not part of {self._scope_name()}; "
                "check TAGJOIN_INSTANCE_ID and the cluster tag"
            )
        return found[0]

    # -- writes ------------------------------------------------------------------------------

    def create_tag(self, instance_id: str, key: str, value: str) -> None:
        """Set `key=value` on the instance (EC2 overwrites an existing value of the key)."""
        self._call(CREATE_TAGS, lambda: self.api.create_tags([instance_id], key, value))

    def delete_tag_if(self, instance_id: str, key: str, value: str) -> None:
        """Delete `key` only if it still has `value`.

        This is the one conditional write EC2 offers; it keeps a stale writer from removing a
        tag that a newer leader has rewritten in the meantime.
        """
        self._call(DELETE_TAGS, lambda: self.api.delete_tags([instance_id], key, value))

    # -- plumbing ----------------------------------------------------------------------------

    def _scope_filters(self) -> list[Filter]:
        return self.scope.filters()

    def _scope_name(self) -> str:
        if self.scope.cluster is None:
            return "this account and region"
        return f"cluster {self.scope.cluster}"

    def _describe(self, *, filters: Sequence[Filter], instance_ids: Sequence[str] = ()) -> list[Instance]:
        """Every page of DescribeInstances, each page retried on its own.

        A retried page resumes from the last token we saw, so a throttle on page 3 does not
        re-read pages 1 and 2.
        """
        pages = self._every_page(DESCRIBE, partial(self.api.describe_instances, filters, instance_ids))
        return [instance for page in pages for instance in page.instances]

    def _tag_entries(self, filters: Sequence[Filter]) -> list[TagEntry]:
        return [
            tag
            for page in self._every_page(DESCRIBE_TAGS, partial(self.api.describe_tags, filters))
            for tag in page.tags
        ]

    def _every_page(self, action: str, fetch: Callable[[str | None], PageT]) -> list[PageT]:
        """Follow NextToken to the end; each page is one retried call of its own.

        EC2 never hands out a token twice; an endpoint that does (a broken proxy, a misbehaving
        test double) would keep the command paging for ever, so a repeat ends the read.
        """
        pages: list[PageT] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            page = self._call(action, partial(fetch, token))
            pages.append(page)
            token = page.next_token
            if token is None:
                return pages
            if token in seen or len(pages) >= MAX_PAGES:
                self.stats.errors += 1
                raise Ec2Error(
                    f"EC2 {action} kept answering with more pages ({len(pages)} read, a NextToken repeated or "
                    "no end); check AWS_ENDPOINT_URL"
                )
            seen.add(token)

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        """Run one EC2 request with bounded, jittered retries on throttling and transient faults."""
        self.stats.calls[action] += 1
        failure: _Retryable | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                delay = self._rng.uniform(0, cap)
                log.debug("EC2 %s: %s; retry %d in %.3fs", action, failure, attempt, delay)
                self._clock.sleep(delay)
            self.stats.attempts += 1
            try:
                return _classified(action, fn)
            except _Retryable as exc:
                failure = exc
                if exc.throttled:
                    self.stats.throttled += 1
                else:
                    self.stats.server_errors += 1
            except Ec2Error:
                self.stats.errors += 1
                raise
        self.stats.errors += 1
        assert failure is not None
        what = "throttled" if failure.throttled else "failing"
        raise Ec2Throttled(
            f"EC2 {action} still {what} after {self.max_attempts} attempts (last: {failure.reason}); "
            "try again later or raise TAGJOIN_EC2_MAX_ATTEMPTS"
        )


def _tag_filter(key: str, value: str | None) -> Filter:
    if value is None:
        return {"Name": "tag-key", "Values": [key]}
    return {"Name": f"tag:{key}", "Values": [value]}


def _remedy(action: str, code: str, message: str) -> str:
    """What to do about a refusal: each cause has its own fix, and the wrong one costs an afternoon."""
    if code in CLOCK_CODES or (code == "SignatureDoesNotMatch" and any(w in message.lower() for w in _CLOCK_WORDS)):
        return "this host's clock is off: fix the clock (chrony or ntpd; `timedatectl set-ntp true`)"
    if code in CREDENTIAL_CODES:
        return (
            "the AWS credentials are not valid or have expired: check the credential chain "
            "(instance role, AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)"
        )
    if code == "OptInRequired":
        return "the account is not subscribed to EC2 in this region: enable the region or check AWS_REGION"
    return f"grant ec2:{action} to this node's IAM role (see `tagjoin deploy-kit`)"


def _classified(action: str, fn: Callable[[], T]) -> T:
    """Call `fn`, turning every failure into _Retryable or a one-line Ec2Error."""
    try:
        return fn()
    except ApiFault as exc:
        code, status = exc.code, exc.status
        message = one_line(exc.message)
        reason = f"{code} (HTTP {status}): {message}" if message else f"{code} (HTTP {status})"
        if code in THROTTLING_CODES or status == 429:
            raise _Retryable(reason, throttled=True) from None
        if code in TRANSIENT_CODES or status >= 500:
            raise _Retryable(reason, throttled=False) from None
        if code.startswith("InvalidInstanceID") or code == "InvalidID":
            raise InstanceNotFound(f"EC2 {action}: {reason}") from None
        if code in DENIED_CODES or status in (401, 403):
            raise Ec2Denied(f"EC2 {action} denied: {reason}; {_remedy(action, code, exc.message)}", code=code) from None
        raise Ec2Error(f"EC2 {action} failed: {reason}") from None
    except TransportFault as exc:
        raise _Retryable(one_line(str(exc)), throttled=False) from None
