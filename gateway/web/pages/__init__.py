"""The console's pages: server-rendered forms that work without JavaScript.

Every POST carries the session's CSRF token (a hidden field, checked by
`Kit.posted`); every object is looked up through gateway/actions, so a foreign
domain's object is a 404 here too. One module per area of the console.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.web.context import Console
from gateway.web.pages import account, domain_settings, operator, quarantine
from gateway.web.pages.kit import Kit


def build(console: Console) -> list[APIRouter]:
    """One router per area (the app includes each: FastAPI keeps a router included in
    another as one opaque entry, which the route table's coverage test cannot read)."""
    kit = Kit(console)
    return [area.build(kit) for area in (account, quarantine, domain_settings, operator)]
