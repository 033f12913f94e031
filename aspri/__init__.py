"""ASPRI: a personal AI assistant in WhatsApp, built as an event-sourced pipeline."""

__version__ = "0.1.0"
