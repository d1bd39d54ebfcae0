"""The event outbox: messages written with each change, consumed at least once by the worker.

Domains subscribe with ``garrison.outbox.register(event_prefix, handler)``.
"""

from garrison.mail import queue as _mail_queue
from garrison.outbox import mail as _mail
from garrison.outbox.registry import Handler, Message, Registry, register, registry

# Mail queued by any domain (``garrison.mail.queue``) is stored here and sent by the worker.
_mail_queue.install_queue(
    lambda session, message, keyring: _mail.queue(session, message=message, keyring=keyring)
)

__all__ = ["Handler", "Message", "Registry", "register", "registry"]
