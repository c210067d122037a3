"""Buckets of rate limits: one per method and full endpoint, naming no secret."""

from __future__ import annotations

from dispatcher.senders.ratelimit import bucket_key, resolve


def test_two_slack_webhooks_on_one_host_have_buckets_of_their_own() -> None:
    first = bucket_key("slack", "https://hooks.slack.com/services/T0/B0/aaaa")
    second = bucket_key("slack", "https://hooks.slack.com/services/T0/B0/bbbb")
    assert first != second
    assert first == bucket_key("slack", "https://hooks.slack.com/services/T0/B0/aaaa")
    assert first.startswith("slack:") and len(first) == len("slack:") + 16
    assert "aaaa" not in first and "hooks" not in first


def test_the_same_endpoint_by_another_method_is_another_bucket() -> None:
    assert bucket_key("webhook", "https://e.com/") != bucket_key("slack", "https://e.com/")


def test_notifications_to_one_endpoint_share_a_bucket_at_their_own_rates() -> None:
    url = "https://hooks.example.com/x"
    slow = resolve("webhook", url, {"rate_limit": 2}, None, None)
    fast = resolve("webhook", url, {"rate_limit": 50}, None, None)
    assert slow is not None and fast is not None
    assert slow.bucket == fast.bucket and (slow.rate, fast.rate) == (2.0, 50.0)
    assert resolve("webhook", url, {}, None, None) is None
    assert resolve("webhook", url, {}, None, 3.0) == resolve("webhook", url, {}, 3.0, None)
