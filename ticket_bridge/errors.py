"""Errors of the ticket bridge; banshi.errors maps them to HTTP status and messages."""

from __future__ import annotations

from banshi.errors import BanshiError, Conflict, Forbidden, NotFound


class TicketError(BanshiError):
    pass


class TicketNotFound(NotFound, TicketError):
    pass


class IllegalTransition(Conflict, TicketError):
    """The action is not allowed in the ticket's status (or another person was first)."""


class NotYours(Forbidden, TicketError):
    """The ticket or conversation belongs to another department or agent."""


class ChatTaken(Conflict, TicketError):
    """Another agent claimed the conversation first, or it was closed."""
