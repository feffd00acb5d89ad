"""Who a rate limit counts: the key's holder, else the peer address (pure, no server)."""

from __future__ import annotations

from streamapp.settings import Settings
from streamapp.web.auth import client_identity

KEYED = Settings(api_key="k-9c1f")


def test_the_right_key_is_one_client_wherever_it_comes_from() -> None:
    first = client_identity("k-9c1f", "10.0.0.1", None, KEYED)
    assert first == client_identity("k-9c1f", "10.0.0.2", None, KEYED)
    assert first.startswith("key:") and "k-9c1f" not in first


def test_without_the_right_key_the_peer_address_counts() -> None:
    assert client_identity(None, "10.0.0.1", None, KEYED) == "addr:10.0.0.1"
    # made-up keys buy no fresh bucket
    assert client_identity("guess-1", "10.0.0.1", None, KEYED) == "addr:10.0.0.1"
    assert client_identity("k-9c1f", "10.0.0.1", None, Settings(api_key=None)) == "addr:10.0.0.1"
    assert client_identity(None, None, None, KEYED) == "addr:unknown"


def test_x_forwarded_for_counts_only_when_trusted_and_only_its_last_entry() -> None:
    forwarded = "1.2.3.4, 203.0.113.9"
    assert client_identity(None, "10.0.0.1", forwarded, KEYED) == "addr:10.0.0.1"
    trusting = Settings(http_trust_forwarded_for=True)
    assert client_identity(None, "10.0.0.1", forwarded, trusting) == "addr:203.0.113.9"
    assert client_identity(None, "10.0.0.1", " ", trusting) == "addr:10.0.0.1"
