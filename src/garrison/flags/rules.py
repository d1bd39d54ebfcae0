"""Flag evaluation, free of any database: operators, semantic versions, stable buckets, and
a flag's definition compiled into one function per environment.

A targeting rule is a list of conditions (all must hold) over the evaluation context, and
serves a variant or a percentage split. A split puts each targeting key in one of 10,000
buckets, ``SHA-256(flag key / salt / targeting key)``; the variants take consecutive
ranges in their listed order, so raising a variant from 10 % to 20 % keeps everyone who was
in the first 10 % in it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

BUCKETS: Final = 10_000
TARGETING_KEY: Final = "targetingKey"
EMAIL_DOMAIN: Final = "email_domain"

# OFREP / OpenFeature reasons and error codes.
STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, ERROR = (
    "STATIC",
    "TARGETING_MATCH",
    "SPLIT",
    "DISABLED",
    "DEFAULT",
    "ERROR",
)
FLAG_NOT_FOUND, TARGETING_KEY_MISSING, INVALID_CONTEXT = (
    "FLAG_NOT_FOUND",
    "TARGETING_KEY_MISSING",
    "INVALID_CONTEXT",
)

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)

SemverKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def semver_key(value: object) -> SemverKey | None:
    """A sort key for a semantic version (pre-releases before the release, identifiers
    compared as SemVer 2.0 says), or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    # The same few versions arrive in context after context: short ones are parsed once.
    return _semver_key_cached(value) if len(value) <= 64 else _semver_key(value)


def _semver_key(value: str) -> SemverKey | None:
    match = _SEMVER.match(value)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    idents: tuple[tuple[int, int | str], ...] = ()
    if pre:
        idents = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    # A release (no pre-release) sorts after every pre-release of the same version.
    return int(major), int(minor), int(patch), 0 if pre else 1, idents


_semver_key_cached = functools.lru_cache(maxsize=1024)(_semver_key)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


Test = Callable[[object], bool]


def _numeric(compare: Callable[[float, float], bool], expected: object) -> Test:
    target = _number(expected)
    assert target is not None

    def test(actual: object) -> bool:
        value = _number(actual)
        return value is not None and compare(value, target)

    return test


def _semver(compare: Callable[[SemverKey, SemverKey], bool], expected: object) -> Test:
    target = semver_key(expected)
    assert target is not None

    def test(actual: object) -> bool:
        value = semver_key(actual)
        return value is not None and compare(value, target)

    return test


def _strings(expected: object) -> tuple[str, ...]:
    return tuple(expected) if isinstance(expected, list) else (str(expected),)


def _starts_with(expected: object) -> Test:
    prefixes = _strings(expected)
    return lambda actual: isinstance(actual, str) and actual.startswith(prefixes)


def _ends_with(expected: object) -> Test:
    suffixes = _strings(expected)
    return lambda actual: isinstance(actual, str) and actual.endswith(suffixes)


def _in(expected: object) -> Test:
    assert isinstance(expected, list)
    hashable = {v for v in expected if not isinstance(v, dict | list)}
    return lambda actual: not isinstance(actual, dict | list) and actual in hashable


def _equals(expected: object) -> Test:
    number = _number(expected)
    if number is not None:
        return lambda actual: _number(actual) == number
    return lambda actual: type(actual) is type(expected) and actual == expected


def _negate(test: Test) -> Test:
    return lambda actual: not test(actual)


# operator → (what its value must be, builder of the test)
OPERATORS: Final[dict[str, tuple[str, Callable[[object], Test]]]] = {
    "equals": ("scalar", _equals),
    "not_equals": ("scalar", lambda e: _negate(_equals(e))),
    "in": ("list", _in),
    "not_in": ("list", lambda e: _negate(_in(e))),
    "starts_with": ("strings", _starts_with),
    "ends_with": ("strings", _ends_with),
    "gt": ("number", lambda e: _numeric(lambda a, b: a > b, e)),
    "gte": ("number", lambda e: _numeric(lambda a, b: a >= b, e)),
    "lt": ("number", lambda e: _numeric(lambda a, b: a < b, e)),
    "lte": ("number", lambda e: _numeric(lambda a, b: a <= b, e)),
    "semver_eq": ("semver", lambda e: _semver(lambda a, b: a == b, e)),
    "semver_gt": ("semver", lambda e: _semver(lambda a, b: a > b, e)),
    "semver_gte": ("semver", lambda e: _semver(lambda a, b: a >= b, e)),
    "semver_lt": ("semver", lambda e: _semver(lambda a, b: a < b, e)),
    "semver_lte": ("semver", lambda e: _semver(lambda a, b: a <= b, e)),
}


def check_operand(operator: str, value: object) -> str | None:
    """Why ``value`` cannot be the operand of ``operator`` (None when it can)."""
    spec = OPERATORS.get(operator)
    if spec is None:
        return f"unknown operator {operator!r}; one of: {', '.join(sorted(OPERATORS))}"
    kind = spec[0]
    if kind == "scalar" and (value is None or isinstance(value, dict | list)):
        return f"{operator} compares with a string, number or boolean"
    if kind == "list" and not (isinstance(value, list) and value):
        return f"{operator} needs a non-empty list"
    if kind == "strings" and not (
        isinstance(value, str)
        or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
    ):
        return f"{operator} needs a string or a list of strings"
    if kind == "number" and _number(value) is None:
        return f"{operator} needs a number"
    if kind == "semver" and semver_key(value) is None:
        return f"{operator} needs a semantic version such as 1.4.0"
    return None


def bucket(flag_key: str, salt: str, targeting_key: str) -> int:
    """The stable bucket (0..9,999) of ``targeting_key`` for a flag."""
    digest = hashlib.sha256(f"{flag_key}/{salt}/{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def attribute(context: Mapping[str, Any], name: str) -> object:
    """A context attribute; ``email_domain`` is derived from ``email`` when not given."""
    value = context.get(name)
    if value is None and name == EMAIL_DOMAIN:
        email = context.get("email")
        if isinstance(email, str) and "@" in email:
            return email.rsplit("@", 1)[1].lower()
    return value


@dataclass(frozen=True)
class Resolution:
    """One evaluation's outcome; ``error_code`` is set (and ``reason`` is ERROR) on failure."""

    key: str
    value: Any
    variant: str | None
    reason: str
    error_code: str | None = None
    error_details: str | None = None

    @functools.cached_property
    def _ofrep(self) -> dict[str, Any]:
        return self._ofrep_body()

    def ofrep(self) -> dict[str, Any]:
        """The OFREP evaluation result; computed once per resolution (a flag's fixed
        outcomes are resolutions made at compile time). The caller must not change it."""
        return self._ofrep

    def _ofrep_body(self) -> dict[str, Any]:
        if self.error_code is not None:
            return {
                "key": self.key,
                "errorCode": self.error_code,
                "errorDetails": self.error_details,
            }
        return {
            "key": self.key,
            "value": self.value,
            "reason": self.reason,
            "variant": self.variant,
            "metadata": {},
        }


Split = tuple[tuple[int, str], ...]  # (upper bucket bound, variant) in ascending bounds


def _split(slices: Sequence[Mapping[str, Any]]) -> Split:
    bound, out = 0, []
    for item in slices:
        bound += round(float(item["weight"]) * BUCKETS / 100)
        out.append((bound, str(item["variant"])))
    return tuple(out)


def _condition(cond: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    name, operator = str(cond["attribute"]), str(cond["operator"])
    test = OPERATORS[operator][1](cond["value"])
    negative = operator.startswith("not_")

    def check(context: Mapping[str, Any]) -> bool:
        value = attribute(context, name)
        if value is None:
            return negative
        if isinstance(value, list):  # a list attribute (roles) matches when any item does
            return any(test(item) for item in value) if not negative else all(map(test, value))
        return test(value)

    return check


Evaluator = Callable[[Mapping[str, Any]], Resolution]


def compile_flag(definition: Mapping[str, Any], environment: str) -> Evaluator:
    """One environment's evaluation of a stored (already validated) flag definition."""
    key = str(definition["key"])
    variants: dict[str, Any] = dict(definition["variants"])
    env: Mapping[str, Any] = (definition.get("environments") or {}).get(environment) or {}
    default = str(env.get("default_variant") or definition["default_variant"])
    salt = str(env.get("salt") or definition.get("salt") or key)

    def result(variant: str, reason: str) -> Resolution:
        return Resolution(key, variants[variant], variant, reason)

    if not env.get("enabled", True):
        disabled = result(str(env.get("off_variant") or default), DISABLED)
        return lambda _context: disabled
    rules = [
        (
            [_condition(c) for c in rule.get("conditions") or ()],
            rule.get("variant"),
            _split(rule["rollout"]) if rule.get("rollout") else None,
        )
        for rule in env.get("rules") or ()
    ]
    fallthrough = _split(env["rollout"]) if env.get("rollout") else None
    static = result(default, STATIC if not rules and fallthrough is None else DEFAULT)
    fixed = {name: result(name, TARGETING_MATCH) for name in variants}

    def split(context: Mapping[str, Any], slices: Split) -> Resolution:
        targeting_key = context.get(TARGETING_KEY)
        if not isinstance(targeting_key, str) or not targeting_key:
            return Resolution(
                key,
                None,
                None,
                ERROR,
                TARGETING_KEY_MISSING,
                "a percentage rollout needs a targetingKey in the context",
            )
        point = bucket(key, salt, targeting_key)
        for bound, variant in slices:
            if point < bound:
                return result(variant, SPLIT)
        return static

    def evaluate(context: Mapping[str, Any]) -> Resolution:
        for conditions, variant, slices in rules:
            if all(check(context) for check in conditions):
                if slices is not None:
                    return split(context, slices)
                return fixed[str(variant)]
        if fallthrough is not None:
            return split(context, fallthrough)
        return static

    return evaluate
