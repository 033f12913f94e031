"""The cron gateway: REST API for recurring and one-shot jobs (``aspri cron``)."""
