"""Helpers shared by CLI commands: loading settings, printing JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.config import Settings, load_settings


def add_config_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        required=required,
        metavar="FILE",
        help="the gateway's TOML configuration",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(args.config) if args.config else Settings()


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
