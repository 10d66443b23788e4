"""Helpers shared by CLI commands: loading settings, printing JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.safe_text import json_text
from gateway.config import ConfigError, Settings, load_settings

DEFAULT_CONFIG = Path("/etc/mailwarden/mailwarden.toml")
CONFIG_ENV = "MAILWARDEN_CONFIG"


def add_config_argument(
    parser: argparse.ArgumentParser, required: bool = True, nested: bool = False
) -> None:
    """--config FILE; when left out, MAILWARDEN_CONFIG or /etc/mailwarden/mailwarden.toml
    (for a command that can run without one: only if that file exists). `nested`: a
    verb under a command that takes --config too (`queue -c F hold ID` and `queue hold
    ID -c F`), so an absent value must not overwrite the command's."""
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS if nested else None,
        metavar="FILE",
        help=f"the gateway's TOML configuration (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})",
    )
    parser.set_defaults(config_required=required)


def resolve_config(args: argparse.Namespace) -> None:
    """Fill in args.config from the environment or the default path, as documented."""
    if getattr(args, "config", None) is not None or not hasattr(args, "config_required"):
        return
    args.config = None
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        args.config = Path(from_env)
    elif args.config_required:
        if not DEFAULT_CONFIG.is_file():
            raise ConfigError(
                f"{DEFAULT_CONFIG}: config file not found (give --config FILE or set {CONFIG_ENV})"
            )
        args.config = DEFAULT_CONFIG
    elif DEFAULT_CONFIG.is_file():
        args.config = DEFAULT_CONFIG


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(args.config) if args.config else Settings()


def _json_default(value: Any) -> Any:
    """Times ISO 8601 with their zone (SQLite gives UTC back naive); the rest as text."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def print_json(value: Any) -> None:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=_json_default)
    sys.stdout.write(json_text(text))
    sys.stdout.write("\n")


def acting_user(value: str | None) -> str:
    """--by NAME, else the operator's own login (through sudo: who ran sudo)."""
    import getpass

    return value or os.environ.get("SUDO_USER") or getpass.getuser()
