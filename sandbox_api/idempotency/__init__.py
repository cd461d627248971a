"""Retry-safe requests: the `Idempotency-Key` service (service.py) and its journal
(journal.py). No aiohttp here: `http/idempotency.py` adapts it to requests."""
