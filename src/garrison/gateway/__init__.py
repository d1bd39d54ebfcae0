"""Pure ASGI middleware, one concern per module. The order is written once, in ``app.py``."""
