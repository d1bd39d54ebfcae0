-- Run once on the first node after it bootstraps the cluster (replicated to the others).
-- The application user may connect only from the app servers' addresses, holds only what
-- the schema needs on its own database (no SUPER, no FILE, no PROCESS), and must use TLS
-- when the recipe has certificates.
CREATE DATABASE IF NOT EXISTS `${database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
${app_users}
-- HAProxy's health check and Garrison's node checks: status variables and replica state.
CREATE USER IF NOT EXISTS 'garrison_monitor'@'${monitor_host}' IDENTIFIED BY '${monitor_password}';
GRANT USAGE, SLAVE MONITOR ON *.* TO 'garrison_monitor'@'${monitor_host}';
-- The asynchronous replicas.
CREATE USER IF NOT EXISTS 'garrison_repl'@'${replica_host}' IDENTIFIED BY '${repl_password}';
GRANT REPLICATION SLAVE ON *.* TO 'garrison_repl'@'${replica_host}';
