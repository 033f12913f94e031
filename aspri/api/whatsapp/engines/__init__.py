"""Channel engines: local web chat, WhatsApp Cloud API, WhatsApp Web through Playwright."""
