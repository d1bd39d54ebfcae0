"""Errors of the quota domain (a refused request is ``garrison.errors.QuotaExceeded``)."""

from __future__ import annotations

from garrison.errors import NotFound


class QuotaNotFound(NotFound):
    """No quota is set for that principal."""

    slug, title = "quota-not-found", "Quota Not Found"
