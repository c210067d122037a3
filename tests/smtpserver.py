"""A real SMTP server on loopback (aiosmtpd) whose mailbox a test can wait on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port


class Mailbox:
    """Every message the server accepted, in order. Set ``rcpt_reply`` (e.g. ``"550 5.1.1 no
    such user"``) to have the server refuse recipients with it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.rcpt_reply: str | None = None
        self._arrived = threading.Condition()

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self._arrived:
            self.messages.append(message_from_bytes(envelope.content))
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        """The first ``count`` messages, waiting for them to arrive."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {len(self.messages)}")
            return list(self.messages[:count])


@contextmanager
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server on a free loopback port: yields the port and its mailbox."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()
