"""The list endpoint's hand-parsed query parameters: the same limits and 422 problems
FastAPI gave, and the same OpenAPI description."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from garrison.errors import ValidationFailed
from garrison.records.params import DEFAULT_LIMIT, MAX_LIMIT, ListParams, parse_list_params


def test_defaults() -> None:
    assert parse_list_params({}) == ListParams(limit=DEFAULT_LIMIT)


def test_values() -> None:
    params = parse_list_params(
        {
            "filter": "score = 3",
            "sort": "-score",
            "cursor": "abc",
            "limit": " 20 ",
            "fields": "title, score,,",
            "count": "TRUE",
        }
    )
    assert params == ListParams("score = 3", "-score", "abc", 20, ["title", "score"], True)
    assert parse_list_params({"count": "off", "filter": "", "fields": ""}) == ListParams()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"count": "maybe"}, "count"),
        ({"filter": "x" * 4097}, "filter"),
        ({"sort": "s" * 501}, "sort"),
        ({"cursor": "c" * 2001}, "cursor"),
        ({"fields": "f" * 2001}, "fields"),
    ],
)
def test_bad_values_name_the_parameter(query: dict[str, str], parameter: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_list_params(query)
    assert caught.value.status == 422
    assert [e["parameter"] for e in caught.value.extensions["errors"]] == [parameter]


def test_every_bad_parameter_is_reported() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_list_params({"limit": "x", "count": "y"})
    assert {e["parameter"] for e in caught.value.extensions["errors"]} == {"limit", "count"}


def test_openapi_still_describes_them(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    listing = paths["/api/v1/collections/{name}/records"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"name", "filter", "sort", "cursor", "limit", "fields", "count"} <= names
    getting = paths["/api/v1/collections/{name}/records/{record_id}"]["get"]
    assert "If-None-Match" in {p["name"] for p in getting["parameters"]}
