"""What every route needs: the database, the settings, authentication, templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from gateway.config import Settings
from gateway.store.rules_store import Checker
from gateway.web.auth import Auth

HERE = Path(__file__).parent


@dataclass
class Console:
    engine: Engine
    settings: Settings
    auth: Auth
    templates: Jinja2Templates
    lists_changed: Callable[[], None]
    rules_checker: Checker
    rules_changed: Callable[[], None]
