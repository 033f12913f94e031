"""Events of the cron job registry (``cronjob:jobs``)."""
