"""The password module's dummy hash (what an unknown name is verified against) is
made when first needed, not when the module is imported: every CLI command imports
the store, and an argon2 hash at import cost each of them 0.2 s of CPU."""

from __future__ import annotations

import subprocess
import sys

from gateway.store import passwords


def test_importing_the_store_makes_no_hash():
    probe = (
        "import argon2\n"
        "made = []\n"
        "real = argon2.PasswordHasher.hash\n"
        "argon2.PasswordHasher.hash = lambda self, p, **k: made.append(p) or real(self, p, **k)\n"
        "import gateway.store.accounts, gateway.store.users\n"
        "print(len(made))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0"


def test_an_unknown_name_is_checked_against_the_dummy_hash_and_fails():
    passwords.warm()
    dummy = passwords._dummy_hash()
    assert dummy.startswith("$argon2id$")
    assert passwords.verify(None, "not a password of anyone") is False
    stored = passwords.hash_password("a real password")
    assert passwords.verify(stored, "a real password") is True
    assert passwords.verify(stored, "another one!") is False
