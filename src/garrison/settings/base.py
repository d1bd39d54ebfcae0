"""Names every settings module shares: the environment type, the prefix, the error."""

from __future__ import annotations

from typing import Literal

Environment = Literal["development", "staging", "production"]


ENV_PREFIX = "GARRISON_"


class ConfigError(Exception):
    """A setting is missing or wrong; ``variable`` names the environment variable to fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message
