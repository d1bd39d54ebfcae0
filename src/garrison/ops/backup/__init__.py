"""Backups: full snapshots, continuous log archiving, point-in-time restore, verification.

MariaDB/MySQL use the real tools (``mariadb-dump``, ``mariadb-backup``, ``mariadb-binlog``);
SQLite uses its online backup API and Litestream. Every artifact is zstd-compressed,
encrypted (``garrison.crypto``, purpose ``backup``) and checksummed in a manifest kept next
to it in storage, so a restore needs nothing but the storage and the master key.
"""
