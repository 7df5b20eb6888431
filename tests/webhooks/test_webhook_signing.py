"""The pure parts of webhooks: signatures the SDK accepts, backoff, ordering keys, the
event catalog, and which destinations are refused (issue 7 points 2 and 3)."""

from __future__ import annotations

import json
import random
import time

import pytest
from workos.common.models.create_webhook_endpoint_events import CreateWebhookEndpointEvents
from workos.webhooks._verification import verify_header

from idp_sync.errors import Unprocessable
from idp_sync.webhooks import destinations, signing
from idp_sync.webhooks.catalog import KNOWN_EVENTS


def test_catalog_is_the_sdks_list_of_event_names() -> None:
    assert {e.value for e in CreateWebhookEndpointEvents} == KNOWN_EVENTS
    assert {"organization_membership.updated", "dsync.group.user_removed"} <= KNOWN_EVENTS


def test_signature_is_accepted_by_the_sdk_and_binds_the_exact_bytes() -> None:
    secret = signing.new_secret()
    body = signing.payload({"id": "event_1", "event": "role.created", "data": {"name": "Ünï"}})
    assert "Ünï".encode() in body  # UTF-8, not \\u escapes: the bytes are what is signed
    now_ms = int(time.time() * 1000)
    header = signing.signature(secret, body, now_ms)
    assert header.startswith(f"t={now_ms}, v1=")
    verify_header(event_body=body, event_signature=header, secret=secret)
    reserialised = json.dumps(json.loads(body)).encode()  # spaces: other bytes, same JSON
    with pytest.raises(ValueError, match="Signature hash does not match"):
        verify_header(event_body=reserialised, event_signature=header, secret=secret)
    with pytest.raises(ValueError):
        verify_header(event_body=body, event_signature=header, secret="another-secret")


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [signing.backoff_seconds(n, base=30, cap=3600, rng=rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(3600, 30 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] <= 3600
    spread = {signing.backoff_seconds(5, base=30, cap=3600) for _ in range(20)}
    assert len(spread) > 1  # jitter: receivers are not retried in step


def test_ordering_key_is_the_object_of_the_event() -> None:
    assert signing.ordering_key("organization_membership.updated", {"id": "om_1"}) == "om_1"
    membership_change = {"user": {"id": "directory_user_1"}, "group": {"id": "directory_group_1"}}
    assert signing.ordering_key("dsync.group.user_removed", membership_change) == (
        "directory_group_1"
    )
    assert signing.ordering_key("dsync.group.deleted", {"id": "directory_group_1"}) == (
        "directory_group_1"
    )
    assert signing.ordering_key("something", {"no": "id"}) is None


def _resolver(mapping: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in mapping:
            raise OSError("no such host")
        return mapping[host]

    return resolve


RESOLVE = _resolver(
    {
        "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "sneaky.example.com": ["93.184.216.34", "10.0.0.5"],
        "metadata.example.com": ["169.254.169.254"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost.:1/x",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "http://[::1]:9000/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "https://sneaky.example.com/hook",  # one private address among public ones
        "https://metadata.example.com/latest",
        "https://nowhere.example.com/hook",  # does not resolve
    ],
)
def test_private_loopback_and_unresolvable_destinations_are_refused(url: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        destinations.check_registration(url, allow_private=False, resolver=RESOLVE)
    assert caught.value.errors[0]["field"] == "endpoint_url"
    with pytest.raises(destinations.DestinationRefused):
        destinations.pin(url, allow_private=False, resolver=RESOLVE)


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "hooks.example.com/x", "https://u:p@hooks.example.com/"]
)
def test_malformed_urls_are_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(Unprocessable):
        destinations.check_registration(url, allow_private=True, resolver=RESOLVE)


def test_public_destination_is_pinned_to_the_checked_address() -> None:
    url = "https://hooks.example.com:8443/in?x=1"
    assert destinations.check_registration(url, allow_private=False, resolver=RESOLVE) == url
    target = destinations.pin(url, allow_private=False, resolver=RESOLVE)
    assert target.url == "https://93.184.216.34:8443/in?x=1"
    assert target.headers == {"Host": "hooks.example.com:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}  # TLS checks the name


def test_private_destinations_allowed_by_the_setting() -> None:
    url = "http://127.0.0.1:8080/hook"
    assert destinations.check_registration(url, allow_private=True) == url
    target = destinations.pin(url, allow_private=True)
    assert (target.url, target.headers, target.extensions) == (url, {}, {})
