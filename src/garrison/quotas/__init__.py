"""Rate-limit quotas set by an admin per API key or per role (overriding the default)."""
