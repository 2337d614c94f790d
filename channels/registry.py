"""Which sender delivers on which channel."""

from __future__ import annotations

from channels.email.sender import EmailSender
from channels.sms.sender import SmsSender
from channels.web.sender import WebSender
from contactcenter.conns import Conns
from contactcenter.domain.enums import Channel
from contactcenter.domain.messages import Sender


def build_senders(conns: Conns) -> dict[Channel, Sender]:
    return {
        Channel.WEB: WebSender(conns),
        Channel.EMAIL: EmailSender(conns),
        Channel.SMS: SmsSender(conns),
    }
