"""docs/example.toml is the complete example the configuration reference points to."""

from __future__ import annotations

import re

from pydantic import BaseModel

from gateway.config import Settings, load_settings
from tests.support.gateway import REPO

EXAMPLE = REPO / "docs" / "example.toml"


def _keys(model: type[BaseModel]) -> set[str]:
    """Every key name a configuration can hold, nested sections included."""
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            inner = getattr(arg, "__args__", (arg,))
            for kind in (arg, *inner):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    names |= _keys(kind)
    return names


def test_the_example_loads():
    settings = load_settings(EXAMPLE)
    assert settings.accepts("example.org")
    assert settings.dnsbl[0].codes["127.0.0.4"].reject is True


def test_the_example_names_every_key():
    text = EXAMPLE.read_text()
    written = set(re.findall(r"^#?\s*([a-z_]+) =", text, re.M))
    written |= set(re.findall(r"^\[+([a-z_.]+)", text, re.M))
    written |= {part for name in list(written) for part in name.split(".")}
    missing = _keys(Settings) - written
    assert not missing, f"docs/example.toml does not show: {sorted(missing)}"
