"""Litestar gateways: WhatsApp (with its channel engines) and the cron jobs API."""
