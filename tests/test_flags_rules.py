"""Flag evaluation without a database: operators, semantic versions, stable buckets, and
what a definition's validation refuses."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.errors import ValidationFailed
from garrison.flags import rules
from garrison.flags.schemas import FlagIn, validate_definition


def flag(env: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "key": "f",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "environments": {"development": env},
        **extra,
    }


def rollout(percent: float) -> dict[str, Any]:
    return {
        "rollout": [
            {"variant": "on", "weight": percent},
            {"variant": "off", "weight": 100 - percent},
        ]
    }


def cond(attribute: str, operator: str, value: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


def test_no_targeting_is_static_and_disabled_serves_the_off_variant() -> None:
    static = rules.compile_flag(flag({}), "development")({})
    assert (static.value, static.variant, static.reason) == (False, "off", rules.STATIC)
    killed = rules.compile_flag(flag({"enabled": False, "off_variant": "off"}), "development")
    assert killed({"targetingKey": "u"}).reason == rules.DISABLED
    # An environment with no configuration serves the flag's default.
    assert rules.compile_flag(flag({}), "production")({}).reason == rules.STATIC


@pytest.mark.parametrize(
    ("condition", "context", "matched"),
    [
        (cond("country", "equals", "NL"), {"country": "NL"}, True),
        (cond("country", "equals", "NL"), {"country": "nl"}, False),
        (cond("age", "equals", 3), {"age": 3.0}, True),
        (cond("beta", "equals", True), {"beta": 1}, False),
        (cond("country", "not_equals", "NL"), {"country": "BE"}, True),
        (cond("country", "not_equals", "NL"), {}, True),
        (cond("role", "in", ["admin", "staff"]), {"role": "staff"}, True),
        (cond("roles", "in", ["admin"]), {"roles": ["user", "admin"]}, True),
        (cond("roles", "not_in", ["admin"]), {"roles": ["user", "admin"]}, False),
        (cond("email_domain", "equals", "example.com"), {"email": "a@Example.com"}, True),
        (cond("email_domain", "in", ["example.com"]), {"email": "a@other.org"}, False),
        (cond("targetingKey", "starts_with", "team-"), {"targetingKey": "team-7"}, True),
        (cond("targetingKey", "starts_with", ["a", "b"]), {"targetingKey": "c1"}, False),
        (cond("email", "ends_with", "@corp.io"), {"email": "x@corp.io"}, True),
        (cond("age", "gte", 18), {"age": 18}, True),
        (cond("age", "gt", 18), {"age": 18}, False),
        (cond("age", "lt", 18), {"age": "17"}, False),
        (cond("age", "lte", 1.5), {"age": 1.5}, True),
        (cond("version", "semver_gte", "1.4.0"), {"version": "1.10.0"}, True),
        (cond("version", "semver_gte", "1.4.0"), {"version": "1.4.0-rc.1"}, False),
        (cond("version", "semver_lt", "2.0.0"), {"version": "v1.99.3"}, True),
        (cond("version", "semver_eq", "1.2.3"), {"version": "1.2.3+build.5"}, True),
        (cond("version", "semver_gt", "1.0.0-alpha.2"), {"version": "1.0.0-alpha.10"}, True),
        (cond("version", "semver_gt", "1.0.0"), {"version": "not a version"}, False),
    ],
)
def test_operators(condition: dict[str, Any], context: dict[str, Any], matched: bool) -> None:
    evaluate = rules.compile_flag(
        flag({"rules": [{"conditions": [condition], "variant": "on"}]}), "development"
    )
    result = evaluate(context)
    assert (result.reason == rules.TARGETING_MATCH) is matched
    assert result.value is matched


def test_all_conditions_of_a_rule_must_hold_and_the_first_match_wins() -> None:
    definition = flag(
        {
            "rules": [
                {"conditions": [cond("a", "equals", 1), cond("b", "equals", 2)], "variant": "on"},
                {"conditions": [cond("a", "equals", 1)], "variant": "off"},
            ]
        }
    )
    evaluate = rules.compile_flag(definition, "development")
    assert evaluate({"a": 1, "b": 2}).value is True
    assert evaluate({"a": 1}).variant == "off"
    assert evaluate({"a": 1}).reason == rules.TARGETING_MATCH
    assert evaluate({}).reason == rules.DEFAULT


def test_buckets_are_stable_and_a_wider_rollout_keeps_the_first_ones_in() -> None:
    keys = [f"user-{n}" for n in range(4000)]
    at10 = rules.compile_flag(flag(rollout(10)), "development")
    at20 = rules.compile_flag(flag(rollout(20)), "development")
    in10 = {k for k in keys if at10({"targetingKey": k}).value}
    in20 = {k for k in keys if at20({"targetingKey": k}).value}
    assert in10 <= in20
    assert 300 < len(in10) < 500  # about 10 % of 4,000
    assert 650 < len(in20) < 950
    again = {k for k in keys if at10({"targetingKey": k}).value}
    assert again == in10
    assert at10({"targetingKey": keys[0]}).reason == rules.SPLIT
    # Another flag (or salt) deals the buckets afresh.
    other = rules.compile_flag(flag(rollout(10), key="g"), "development")
    assert {k for k in keys if other({"targetingKey": k}).value} != in10


def test_a_rollout_needs_a_targeting_key() -> None:
    result = rules.compile_flag(flag(rollout(50)), "development")({})
    assert result.error_code == rules.TARGETING_KEY_MISSING
    assert result.ofrep()["errorCode"] == rules.TARGETING_KEY_MISSING


def test_semver_ordering() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    keys = [rules.semver_key(v) for v in ordered]
    assert all(k is not None for k in keys)
    assert sorted(keys) == keys  # type: ignore[type-var]
    assert rules.semver_key("1.0") is None
    assert rules.semver_key(100) is None


def definition_of(**changes: Any) -> dict[str, Any]:
    body = {"type": "boolean", "variants": {"on": True, "off": False}, "default_variant": "off"}
    body.update(changes)
    return FlagIn.model_validate(body).model_dump(mode="json", exclude={"key"})


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"default_variant": "maybe"}, "#/default_variant"),
        ({"variants": {"on": "yes", "off": False}}, "#/variants/on"),
        (
            {
                "environments": {
                    "development": {
                        "rules": [{"conditions": [cond("a", "matches", "x")], "variant": "on"}]
                    }
                }
            },
            "#/environments/development/rules/0/conditions/0/operator",
        ),
        (
            {
                "environments": {
                    "development": {
                        "rules": [{"conditions": [cond("v", "semver_gt", "1.x")], "variant": "on"}]
                    }
                }
            },
            "#/environments/development/rules/0/conditions/0/value",
        ),
        (
            {
                "environments": {
                    "development": {
                        "rules": [{"conditions": [cond("n", "in", [])], "variant": "on"}]
                    }
                }
            },
            "#/environments/development/rules/0/conditions/0/value",
        ),
        (
            {
                "environments": {
                    "development": {
                        "rules": [{"conditions": [cond("n", "gt", "3")], "variant": "on"}]
                    }
                }
            },
            "#/environments/development/rules/0/conditions/0/value",
        ),
        (
            {"environments": {"development": {"rules": [{"conditions": []}]}}},
            "#/environments/development/rules/0",
        ),
        (
            {"environments": {"development": {"rollout": [{"variant": "on", "weight": 60}]}}},
            "#/environments/development/rollout",
        ),
        (
            {"environments": {"development": {"off_variant": "nope"}}},
            "#/environments/development/off_variant",
        ),
        ({"environments": {"Prod!": {}}}, "#/environments/Prod!"),
    ],
)
def test_validation_names_the_field(changes: dict[str, Any], pointer: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(definition_of(**changes))
    pointers = [e["pointer"] for e in caught.value.extensions["errors"]]
    assert pointer in pointers


def test_a_valid_definition_passes() -> None:
    validate_definition(
        definition_of(
            environments={
                "production": {
                    "rules": [{"conditions": [cond("role", "in", ["admin"])], "variant": "on"}],
                    **rollout(25),
                }
            }
        )
    )
