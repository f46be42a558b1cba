"""Zeroconf: the hub advertises itself to phones and keeps a list of the phones around."""

from hub.discovery.records import AGENT_SERVICE, HUB_SERVICE, HubRecord, PhoneRecord
from hub.discovery.service import Discovery, PhoneSeen

__all__ = ["AGENT_SERVICE", "HUB_SERVICE", "Discovery", "HubRecord", "PhoneRecord", "PhoneSeen"]
