"""Create-time validation of each method's config: Quay's 400 messages."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.errors import InvalidRequestError, UnknownMethodError
from dispatcher.senders.registry import METHODS, validate_config

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SETTINGS = Settings()


def rejects(method: str, config: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        validate_config(method, config, SETTINGS)
    return caught.value.message


def test_methods() -> None:
    assert METHODS == ("webhook", "slack", "email")


@pytest.mark.parametrize("method", ["hipchat", "flowdock", "quay_notification", "sms", ""])
def test_unknown_methods(method: str) -> None:
    with pytest.raises(UnknownMethodError) as caught:
        validate_config(method, {}, SETTINGS)
    assert caught.value.message == f"Unknown notification method '{method}'"


# -- webhook -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"url": ""}, {"url": "   "}, {"url": None}, {"url": 42}])
def test_webhook_missing_url(config: dict[str, Any]) -> None:
    assert rejects("webhook", config) == "Missing webhook URL"


@pytest.mark.parametrize(
    "url",
    [
        "telnet://example.com",
        "http://localhost/",
        "http://localhost:5000/",
        "https://127.0.0.1:5000/",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://",
    ],
)
def test_webhook_invalid_url(url: str) -> None:
    # Quay's words first; refused addresses add why (see test_netguard)
    assert rejects("webhook", {"url": url}).startswith("Invalid webhook URL")


def test_webhook_valid_and_returned_as_submitted() -> None:
    config = {"url": "http://example.com", "template": "", "extra": [1]}
    assert validate_config("webhook", config, SETTINGS) == config
    config = {
        "url": "https://example.com/h",
        "template": '{"r": "${repository}"}',
        "secret": SECRET,
    }
    assert validate_config("webhook", config, SETTINGS) == config


def test_webhook_local_url_allowed_by_networks() -> None:
    settings = Settings(allowed_networks="127.0.0.0/8")
    validate_config("webhook", {"url": "http://127.0.0.1:9000/"}, settings)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope", "Could not parse template: Expecting property name enclosed in double quotes"),
        ('{"a": "${}"}', "Empty expression found"),
        ('{"a": "${foo..}"}', "For expression `foo..`: "),
    ],
)
def test_webhook_bad_template(template: str, message: str) -> None:
    assert rejects("webhook", {"url": "http://example.com", "template": template}).startswith(
        message
    )


@pytest.mark.parametrize("template", [{"a": 1}, ["x"], 5, True])
def test_webhook_template_must_be_a_string(template: Any) -> None:
    message = rejects("webhook", {"url": "http://example.com", "template": template})
    assert message.startswith("Webhook template must be a string containing JSON")


@pytest.mark.parametrize(
    "secret",
    ["secret", "whsec_", "whsec_not base64!", "whsec_c2hvcnQ=", 1234, ["whsec_x"]],
)
def test_webhook_bad_secret(secret: Any) -> None:
    message = rejects("webhook", {"url": "http://example.com", "secret": secret})
    assert message == "Webhook secret must be 'whsec_' followed by base64 of 16 to 64 random bytes"


# -- slack -------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"url": ""}, {"url": None}, {"url": 3}])
def test_slack_missing_url(config: dict[str, Any]) -> None:
    assert rejects("slack", config) == "Missing Slack Callback URL"


@pytest.mark.parametrize("url", ["ftp://hooks.slack.com/x", "http://localhost/", "http://[::1]/"])
def test_slack_invalid_url(url: str) -> None:
    assert rejects("slack", {"url": url}) == "Invalid Slack Callback URL"


def test_slack_valid() -> None:
    config = {"url": "https://hooks.slack.com/services/T000/B000/XXXX"}
    assert validate_config("slack", config, SETTINGS) == config


# -- email -------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"email": ""}, {"email": None}])
def test_email_missing(config: dict[str, Any]) -> None:
    assert rejects("email", config) == "Missing e-mail address"


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "a@b",
        "two@example.com, three@example.com",
        "victim@example.com\r\nBcc: all@example.com",
        "victim@example.com\nBcc: all@example.com",
        "Name <a@example.com>",
        42,
        ["a@example.com"],
    ],
)
def test_email_invalid(address: Any) -> None:
    assert rejects("email", {"email": address}) == "Invalid e-mail address"


def test_email_valid() -> None:
    config = {"email": "ops@example.com"}
    assert validate_config("email", config, SETTINGS) == config


# -- rate_limit, in every method's config --------------------------------------------------------

VALID_CONFIGS = {
    "webhook": {"url": "https://hooks.example.com/a"},
    "slack": {"url": "https://hooks.slack.com/services/T0/B0/X"},
    "email": {"email": "ops@example.com"},
}
BAD_RATES: list[Any] = [0, 0.0, -1, -0.5, "1", "fast", True, False, [1], {"per": 1}]
BAD_RATES += [float("nan"), float("inf"), float("-inf"), 1000.001, 10**6]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rate", BAD_RATES, ids=repr)
def test_a_bad_rate_limit_is_refused_naming_the_field(method: str, rate: Any) -> None:
    from dispatcher.errors import InvalidFieldError

    with pytest.raises(InvalidFieldError) as caught:
        validate_config(method, {**VALID_CONFIGS[method], "rate_limit": rate}, SETTINGS)
    assert caught.value.location == ("config", "rate_limit")
    assert caught.value.message.startswith("config.rate_limit must be a number")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rate", [0.001, 0.5, 1, 10, 1000, None])
def test_a_rate_limit_is_stored_as_submitted(method: str, rate: Any) -> None:
    config = {**VALID_CONFIGS[method], "rate_limit": rate}
    assert validate_config(method, config, SETTINGS) == config


def test_the_methods_own_message_comes_first() -> None:
    assert rejects("slack", {"rate_limit": 0}) == "Missing Slack Callback URL"


def rate_of(method: str, config: dict[str, Any], settings: Settings) -> float | None:
    from dispatcher.senders.registry import rate_limit

    limit = rate_limit(method, config, settings)
    return None if limit is None else limit.rate


def test_the_rate_a_delivery_goes_at() -> None:
    slack, hook, mail = VALID_CONFIGS["slack"], VALID_CONFIGS["webhook"], VALID_CONFIGS["email"]
    operator = Settings(default_rate_limit=5)
    # its own rate_limit, over the method's default, over the operator's
    assert rate_of("slack", {**slack, "rate_limit": 20}, operator) == 20
    assert rate_of("slack", slack, operator) == 1.0
    assert rate_of("webhook", hook, operator) == 5
    assert rate_of("email", {**mail, "rate_limit": 0.5}, SETTINGS) == 0.5
    # unpaced: no rate anywhere, or a method the registry does not know
    assert rate_of("webhook", hook, SETTINGS) is None
    assert rate_of("email", mail, SETTINGS) is None
    assert rate_of("hipchat", {"url": "x", "rate_limit": 1}, SETTINGS) is None
    # a value stored before it was checked paces by the defaults
    assert rate_of("webhook", {**hook, "rate_limit": "9"}, operator) == 5


def test_the_bucket_is_the_method_and_the_full_endpoint() -> None:
    from dispatcher.senders.ratelimit import bucket_key
    from dispatcher.senders.registry import rate_limit

    slack = rate_limit("slack", VALID_CONFIGS["slack"], SETTINGS)
    assert slack is not None
    assert slack.bucket == bucket_key("slack", "https://hooks.slack.com/services/T0/B0/X")
    mail = rate_limit("email", {**VALID_CONFIGS["email"], "rate_limit": 1}, SETTINGS)
    assert mail is not None and mail.bucket == bucket_key("email", "ops@example.com")
