"""API shapes of the flags domain. A definition is checked whole when saved (variants of
the flag's type, every variant named exists, known operators with operands that fit, splits
that add up to 100 %), so evaluation never meets a malformed rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from garrison.errors import ValidationFailed
from garrison.flags import rules

FlagType = Literal["boolean", "string", "number", "object"]
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ENV_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(min_length=1, max_length=128, description="targetingKey, role, …")
    operator: str = Field(description="equals, in, starts_with, gt, semver_gte, …")
    value: JsonValue


class Slice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str
    weight: float = Field(ge=0, le=100, description="percent; a split's weights add up to 100")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=128)
    conditions: list[Condition] = Field(default_factory=list, max_length=32)
    variant: str | None = Field(default=None, description="served when the rule matches")
    rollout: list[Slice] | None = Field(default=None, description="or a percentage split")


class EnvironmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: the kill switch")
    off_variant: str | None = Field(default=None, description="served when disabled")
    default_variant: str | None = Field(default=None, description="overrides the flag's")
    rules: list[Rule] = Field(default_factory=list, max_length=100)
    rollout: list[Slice] | None = Field(default=None, description="split when no rule matches")
    salt: str | None = Field(default=None, max_length=64, description="re-deals the buckets")


class FlagIn(BaseModel):
    """A whole definition (create, or replace with PUT: how a definition exported from one
    environment is applied to another)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(default=None, pattern=KEY_PATTERN, description="POST only")
    description: str = Field(default="", max_length=1000)
    type: FlagType
    variants: dict[str, JsonValue] = Field(min_length=1, max_length=100)
    default_variant: str
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict, max_length=32)


class EnvironmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    off_variant: str | None = None
    default_variant: str | None = None
    rules: list[Rule] | None = Field(default=None, max_length=100)
    rollout: list[Slice] | None = None
    salt: str | None = Field(default=None, max_length=64)


class FlagPatch(BaseModel):
    """Fields given replace the stored ones; an environment given changes only the fields
    it names (``{"environments": {"production": {"enabled": false}}}`` is the kill switch)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=1000)
    variants: dict[str, JsonValue] | None = Field(default=None, min_length=1, max_length=100)
    default_variant: str | None = None
    environments: dict[str, EnvironmentPatch] | None = Field(default=None, max_length=32)


class FlagOut(BaseModel):
    key: str
    description: str
    type: FlagType
    variants: dict[str, Any]
    default_variant: str
    environments: dict[str, EnvironmentConfig]
    version: int
    created_at: datetime
    updated_at: datetime


_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "string": (str,),
    "number": (int, float),
    "object": (dict, list),
}


def _fits(kind: str, value: object) -> bool:
    if kind == "number" and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def validate_definition(definition: dict[str, Any]) -> None:
    """Raise ``ValidationFailed`` naming every field of ``definition`` that is wrong."""
    import re

    errors: list[dict[str, str]] = []
    kind, variants = definition["type"], definition["variants"]
    for name, value in variants.items():
        if not re.match(VARIANT_PATTERN, name):
            errors.append(
                {
                    "pointer": f"#/variants/{name}",
                    "detail": "a variant name is 1-64 of A-Z a-z 0-9 . _ -",
                }
            )
        elif not _fits(kind, value):
            errors.append(
                {"pointer": f"#/variants/{name}", "detail": f"a {kind} flag's variants are {kind}s"}
            )

    def variant(name: object, pointer: str) -> None:
        if name is not None and name not in variants:
            errors.append({"pointer": pointer, "detail": f"no variant named {name!r}"})

    def split(slices: list[dict[str, Any]] | None, pointer: str) -> None:
        if slices is None:
            return
        if not slices:
            errors.append({"pointer": pointer, "detail": "a split needs at least one variant"})
            return
        for i, item in enumerate(slices):
            variant(item["variant"], f"{pointer}/{i}/variant")
        total = sum(float(item["weight"]) for item in slices)
        if abs(total - 100) > 1e-6:
            errors.append(
                {"pointer": pointer, "detail": f"the weights add up to {total:g}, not 100"}
            )

    variant(definition["default_variant"], "#/default_variant")
    for env_name, env in (definition.get("environments") or {}).items():
        base = f"#/environments/{env_name}"
        if not re.match(ENV_PATTERN, env_name):
            errors.append({"pointer": base, "detail": "an environment name is 1-32 of a-z 0-9 _ -"})
        variant(env.get("off_variant"), f"{base}/off_variant")
        variant(env.get("default_variant"), f"{base}/default_variant")
        split(env.get("rollout"), f"{base}/rollout")
        for r, rule in enumerate(env.get("rules") or ()):
            where = f"{base}/rules/{r}"
            if (rule.get("variant") is None) == (rule.get("rollout") is None):
                errors.append(
                    {
                        "pointer": where,
                        "detail": "a rule serves a variant or a rollout (one of them)",
                    }
                )
            variant(rule.get("variant"), f"{where}/variant")
            split(rule.get("rollout"), f"{where}/rollout")
            for c, cond in enumerate(rule.get("conditions") or ()):
                problem = rules.check_operand(cond["operator"], cond["value"])
                if problem:
                    key = "operator" if cond["operator"] not in rules.OPERATORS else "value"
                    errors.append({"pointer": f"{where}/conditions/{c}/{key}", "detail": problem})
    if errors:
        raise ValidationFailed("the flag definition is not valid", errors=errors)
