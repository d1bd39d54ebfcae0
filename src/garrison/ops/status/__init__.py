"""The public status page: components from the health checks, minute samples and a 90-day
uptime bar, incidents and maintenance windows with their subscribers, and the read-only
switch a maintenance window may turn on.
"""
