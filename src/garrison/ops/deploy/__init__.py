"""Deploys: the HAProxy front end, blue-green switching through its runtime API, releases
as wheels in per-release virtual environments, and the audited deploy ledger."""
