#!/bin/sh
# HAProxy external check: healthy when the node is Synced (wsrep_local_state 4) in the
# primary component and accepts queries. Credentials come from the monitor option file
# (mode 600) named by GARRISON_MONITOR_CNF, never from the command line.
# HAProxy passes the server's address and port as arguments 3 and 4.
addr="$3"; port="$4"
out=$(mariadb --defaults-extra-file="${GARRISON_MONITOR_CNF:-/etc/garrison/monitor.cnf}" \
    --connect-timeout=1 --host="$addr" --port="$port" --protocol=tcp -N -B -e \
    "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_LOCAL_STATE','WSREP_CLUSTER_STATUS','WSREP_READY') ORDER BY VARIABLE_NAME" 2>/dev/null) || exit 1
# Rows in name order: cluster status, local state, ready.
set -- $out
[ "$1" = "Primary" ] && [ "$2" = "4" ] && [ "$3" = "ON" ] && exit 0
exit 1
