"""The kiosk daemon: check-in records, the durable outbox, sync, configuration and the
composition root. Imports nothing from hardware libraries at import time."""

__version__ = "0.1.0"
