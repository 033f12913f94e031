"""The WhatsApp gateway: REST API, history from the log, and the channel engines."""
