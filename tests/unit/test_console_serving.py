"""What the local run's web console serves: its files with their content types and nothing beside them, the
pages' configuration from the one table of settings, the listener link's QR code, and the dev token on POST only."""

from __future__ import annotations

import json
from decimal import Decimal
from http import HTTPStatus

import pytest

from lambda_src import partial_results
from local_run import console
from local_run.console import Console

WEBSOCKET_URL = "ws://127.0.0.1:9000/dev"


@pytest.fixture()
def served() -> Console:
    return Console(
        websocket_url=WEBSOCKET_URL, http_url="http://127.0.0.1:9001", mint_token=lambda seconds: f"token-{seconds}"
    )


def _get(served: Console, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    response = served.respond(method, path, b"")
    assert response is not None, path
    status, extra, body = response
    headers = dict(line.split(": ", 1) for line in extra.split("\r\n") if line)
    return status, {name.lower(): value for name, value in headers.items()}, body


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("speaker.html", "text/html"),
        ("listener.html", "text/html"),
        ("console.js", "text/javascript"),
        ("capture-worklet.js", "text/javascript"),
        ("console.css", "text/css"),
    ],
)
def test_each_console_file_is_served_with_its_content_type(served: Console, name: str, content_type: str) -> None:
    status, headers, body = _get(served, f"/console/{name}")
    assert status == HTTPStatus.OK
    assert headers["content-type"].split(";")[0] == content_type
    assert body == (console.CONSOLE_DIR / name).read_bytes()


def test_the_console_root_is_the_index_linking_both_pages(served: Console) -> None:
    status, _, body = _get(served, "/console/")
    assert status == HTTPStatus.OK
    assert b'href="speaker.html"' in body and b'href="listener.html"' in body
    status, headers, _ = _get(served, "/console")
    assert (status, headers["location"]) == (HTTPStatus.PERMANENT_REDIRECT, "/console/")


@pytest.mark.parametrize(
    "path", ["/console/../run.py", "/console/../../README.md", "/console/qr/../config.json.svg", "/console/nothing.js"]
)
def test_nothing_outside_the_console_folder_is_served(served: Console, path: str) -> None:
    status, _, _ = _get(served, path)
    assert status == HTTPStatus.NOT_FOUND


def test_other_paths_are_left_to_the_gateway(served: Console) -> None:
    assert served.respond("GET", "/dev/@connections/abc", b"") is None
    assert served.respond("GET", "/consoles/speaker.html", b"") is None


def test_the_configuration_carries_every_settings_bounds_and_default_from_the_one_table(served: Console) -> None:
    status, headers, body = _get(served, "/console/config.json")
    config = json.loads(body)
    assert (status, headers["content-type"]) == (HTTPStatus.OK, "application/json")
    assert config["websocketUrl"] == WEBSOCKET_URL
    assert config["consoleUrl"] == "http://127.0.0.1:9001/console/"
    by_name = {setting["request"]: setting for setting in config["settings"]}
    assert list(by_name) == list(partial_results.REQUEST_NAMES)
    for field in partial_results.FIELDS:
        setting = by_name[field.request]
        assert setting["message"] == field.stored
        if field.kind is bool:
            assert (setting["kind"], setting["default"]) == ("boolean", field.default)
        else:
            lower, upper = field.bounds
            assert setting["kind"] == "number"
            assert (setting["lower"], setting["upper"], setting["default"]) == (
                float(lower),
                float(upper),
                float(field.default),
            )
            # The step lands on the bounds and the default, so the control's arrows reach each of them
            step = Decimal(str(setting["step"]))
            assert all(value % step == 0 for value in (lower, upper, field.default))


def test_the_qr_code_is_an_svg_of_the_sessions_listener_link(served: Console) -> None:
    status, headers, body = _get(served, "/console/qr/golden-eagle-427.svg")
    assert (status, headers["content-type"].split(";")[0]) == (HTTPStatus.OK, "image/svg+xml")
    assert body.startswith(b"<svg")
    assert body != _get(served, "/console/qr/golden-eagle-428.svg")[2]
    assert (
        served.listener_link("golden-eagle-427")
        == "http://127.0.0.1:9001/console/listener.html?session=golden-eagle-427"
    )
    assert _get(served, "/console/qr/not a session.svg")[0] == HTTPStatus.NOT_FOUND


def test_the_dev_token_is_minted_on_post_only(served: Console) -> None:
    status, _, body = _get(served, "/console/dev-token", method="POST")
    assert (status, json.loads(body)["token"]) == (HTTPStatus.OK, f"token-{console.DEV_TOKEN_SECONDS}")
    status, headers, _ = _get(served, "/console/dev-token")
    assert (status, headers["allow"]) == (HTTPStatus.METHOD_NOT_ALLOWED, "POST")
    assert _get(served, "/console/config.json", method="POST")[0] == HTTPStatus.METHOD_NOT_ALLOWED
