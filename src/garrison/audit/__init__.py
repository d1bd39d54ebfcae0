"""The audit trail: a hash-chained, searchable record of every change and attempt."""
