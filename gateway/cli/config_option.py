"""The -c/--config option shared by commands that read the gateway configuration."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gateway.cli import CliError
from gateway.config import Settings, load_settings

CONFIG_ENV = "MAILWARDEN_CONFIG"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENV),
        help=f"gateway configuration (TOML); default: ${CONFIG_ENV}",
    )


def require_settings(args: argparse.Namespace) -> Settings:
    if not args.config:
        raise CliError(f"no configuration: give -c FILE or set ${CONFIG_ENV}")
    return load_settings(args.config)
