"""/openapi.json describes what the endpoints really answer; /docs serves the UI."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from dispatcher.events import EVENT_NAMES

OPERATIONS = {
    "listRepoNotifications": ("get", "/notification/", "200"),
    "createRepoNotification": ("post", "/notification/", "201"),
    "getRepoNotification": ("get", "/notification/{uuid}", "200"),
    "deleteRepoNotification": ("delete", "/notification/{uuid}", "204"),
    "resetRepositoryNotificationFailures": ("post", "/notification/{uuid}", "204"),
    "testRepoNotification": ("post", "/notification/{uuid}/test", "201"),
}
PREFIX = "/api/v1/repository/{namespace}/{repository}"


def test_openapi_lists_the_six_operations_with_their_real_status_codes(
    http: httpx.Client,
) -> None:
    spec = http.get("/openapi.json").json()
    found = {
        operation["operationId"]: (verb, path, operation)
        for path, item in spec["paths"].items()
        for verb, operation in item.items()
    }
    for operation_id, (verb, suffix, success) in OPERATIONS.items():
        assert operation_id in found, operation_id
        real_verb, path, operation = found[operation_id]
        assert (real_verb, path) == (verb, PREFIX + suffix)
        codes = set(operation["responses"])
        assert success in codes
        assert {"400", "401", "403", "404"} <= codes
        assert "422" not in codes, f"{operation_id} documents FastAPI's 422, which we never send"


def test_create_documents_its_body_and_the_view(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    create = spec["paths"][PREFIX + "/notification/"]["post"]
    schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"event", "method", "config", "eventConfig"}
    events = schema["properties"]["event"]["description"]
    assert all(f"`{name}`" in events for name in EVENT_NAMES)
    assert "`notification_failing`" in events and "`notification_disabled`" in events
    view = spec["components"]["schemas"]["NotificationView"]
    assert set(view["properties"]) == {
        "uuid",
        "title",
        "event",
        "method",
        "config",
        "event_config",
        "number_of_failures",
    }
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {
        "detail",
        "error_message",
        "error_type",
        "title",
        "type",
        "status",
    }


def test_every_api_operation_declares_the_bearer_scheme(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, item in spec["paths"].items():
        for verb, operation in item.items():
            expected = [{"token": []}] if path.startswith("/api/v1/") else None
            assert operation.get("security") == expected, (verb, path)


class _Assets(HTMLParser):
    """The URLs a page loads: script sources, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


@pytest.mark.parametrize(
    ("page", "needs"),
    [("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}), ("/redoc", {"redoc.standalone.js"})],
)
def test_docs_pages_load_only_what_dispatcher_serves(
    http: httpx.Client, page: str, needs: set[str]
) -> None:
    response = http.get(page)
    assert response.status_code == 200
    assert "/openapi.json" in response.text
    parser = _Assets()
    parser.feed(response.text)
    assert needs <= {url.rsplit("/", 1)[-1] for url in parser.urls}
    for url in parser.urls:
        assert not urlsplit(url).netloc, f"{page} loads {url} from another host"
        asset = http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


QUAY_OPERATIONS = {
    "getLoggedInUser": ("get", "/api/v1/user/", "200", {"401"}),
    "getOrganization": ("get", "/api/v1/organization/{orgname}", "200", {"401", "403", "404"}),
    "getRepo": ("get", PREFIX, "200", {"401", "403", "404"}),
    "checkRepoEmailAuthorized": (
        "get",
        PREFIX + "/authorizedemail/{email}",
        "200",
        {"401", "403", "404"},
    ),
    "sendAuthorizeRepoEmail": (
        "post",
        PREFIX + "/authorizedemail/{email}",
        "200",
        {"400", "401", "403", "404", "502", "503"},
    ),
}


def test_openapi_lists_quays_account_and_authorized_email_operations(
    http: httpx.Client,
) -> None:
    spec = http.get("/openapi.json").json()
    found = {
        operation.get("operationId"): (verb, path, operation)
        for path, item in spec["paths"].items()
        for verb, operation in item.items()
    }
    for operation_id, (verb, path, success, errors) in QUAY_OPERATIONS.items():
        assert operation_id in found, operation_id
        real_verb, real_path, operation = found[operation_id]
        assert (real_verb, real_path) == (verb, path)
        assert {success, *errors} <= set(operation["responses"]), operation_id
    schemas = spec["components"]["schemas"]
    assert {"username", "anonymous", "organizations", "super_user"} <= set(
        schemas["UserView"]["properties"]
    )
    assert {"namespace", "name", "kind", "description", "is_public", "can_write", "can_admin"} <= (
        set(schemas["RepositoryView"]["properties"])
    )
    assert set(schemas["AuthorizedEmailView"]["properties"]) == {
        "email",
        "repository",
        "namespace",
        "confirmed",
    }
    assert "/authrepoemail" in spec["paths"]


def test_recover_documents_its_body_its_answer_and_its_problems(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    path = PREFIX + "/notification/{uuid}/deliveries/recover"
    assert set(spec["paths"][path]) == {"post"}
    recover = spec["paths"][path]["post"]
    assert recover["operationId"] == "recoverNotificationDeliveries"
    assert {"202", "400", "401", "403", "404"} <= set(recover["responses"])
    assert "422" not in recover["responses"]
    body = recover["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["since"] and set(body["properties"]) == {"since", "until"}
    answer = recover["responses"]["202"]["content"]["application/json"]["schema"]["$ref"]
    recovered = spec["components"]["schemas"][answer.rsplit("/", 1)[1]]
    assert set(recovered["required"]) == {"recovered", "delivery_ids"}
