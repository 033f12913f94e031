"""Stream processors: the conversation engine, the cron scheduler, the cron-trigger handler."""
