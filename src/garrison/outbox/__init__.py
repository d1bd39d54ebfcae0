"""The event outbox: messages written with each change, consumed at least once by the worker.

Domains subscribe with ``garrison.outbox.register(event_prefix, handler)``.
"""

from garrison.outbox.registry import Handler, Message, Registry, register, registry

__all__ = ["Handler", "Message", "Registry", "register", "registry"]
