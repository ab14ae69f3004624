"""Delivery channels behind one interface: an outbox directory, SMTP and an HTTP webhook."""

from activities.channels.base import Channel, Message, PermanentChannelError, TransientChannelError

__all__ = ["Channel", "Message", "PermanentChannelError", "TransientChannelError"]
