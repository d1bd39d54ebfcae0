"""Privacy: subject access exports, erasure, retention policies and the development
reference database. ``keys`` (per-subject keys for audit data) is imported by the audit
layer and imports nothing above it."""
