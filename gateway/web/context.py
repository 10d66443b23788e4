"""What every route needs: the database, the settings, authentication, templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from gateway.config import Settings
from gateway.pipeline.dry_run import Bench
from gateway.pipeline.rules_db import SettingsChecker
from gateway.web.auth import Auth

HERE = Path(__file__).parent


@dataclass
class Console:
    engine: Engine
    settings: Settings
    auth: Auth
    templates: Jinja2Templates
    lists_changed: Callable[[], None]
    rules_checker: SettingsChecker
    rules_changed: Callable[[], None]
    dry_runs: Bench  # the pipeline's parts for rules dry runs, made on first use
    policies_changed: Callable[[], None]  # tells the gateway processes (av_policy_live)
