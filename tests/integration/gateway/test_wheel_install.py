"""The built wheel carries its own data: installed outside the checkout, it scans a mail.

Built without network (no build isolation: the dev venv's setuptools) from a copy of
the checkout, installed with --no-deps into a fresh venv that borrows the dev venv's
dependencies through a .pth line, then run from a directory that is not the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
    "var",
)  # fmt: skip

SPAM = (
    b"From: Deals <deals@shop.test>\n"
    b"To: bob@example.test\n"
    b"Subject: cheap pills, limited offer\n\n"
    b"Buy cheap viagra pills now, limited offer, click here http://spam.test/\n"
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{cmd}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv outside the checkout with the freshly built wheel installed; its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = base / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dist), str(source)],
        cwd=base,
    )  # fmt: skip
    (wheel,) = dist.glob("mailwarden-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         str(wheel)],
        cwd=base,
    )  # fmt: skip
    # the dependencies come from the dev venv; a plain path line (no editable finder)
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=base
    ).stdout.strip()
    Path(purelib, "dev-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
def test_wheel_installed_elsewhere_scans_with_its_own_model(installed, tmp_path):
    where = _run(
        [str(installed / "python"), "-c", "import gateway.paths as p; print(p.rules_dir())"],
        cwd=tmp_path,
        env=_env(),
    ).stdout.strip()
    assert not Path(where).is_relative_to(REPO), where  # the wheel's copy, not the checkout
    for shipped in ("models/baseline.skops", "symbols/core.toml", "clamav/mailwarden.ndb"):
        assert (Path(where) / shipped).is_file(), shipped

    eml = tmp_path / "offer.eml"
    eml.write_bytes(SPAM)
    done = _run(
        [str(installed / "mailwarden"), "scan", str(eml), "--json"], cwd=tmp_path, env=_env()
    )
    verdict = json.loads(done.stdout)
    names = {s["name"] for s in verdict["symbols"]}
    assert "CLASSIFIER_SPAM" in names, done.stdout  # the shipped model ran
    assert verdict["score"] > 5


@pytest.mark.slow
def test_rules_dir_override_still_wins_over_the_packaged_data(installed, tmp_path):
    custom = tmp_path / "myrules"
    shutil.copytree(REPO / "rules", custom)
    (custom / "models" / "baseline.skops").unlink()
    eml = tmp_path / "offer.eml"
    eml.write_bytes(SPAM)
    done = subprocess.run(
        [str(installed / "mailwarden"), "scan", str(eml)],
        cwd=tmp_path,
        env={**_env(), "MAILWARDEN_RULES_DIR": str(custom)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert str(custom / "models" / "baseline.skops") in done.stderr


def _wheel(installed: Path) -> Path:
    (wheel,) = (installed.parents[1] / "dist").glob("mailwarden-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_carries_the_migrations_and_every_rules_file(installed):
    import zipfile

    names = set(zipfile.ZipFile(_wheel(installed)).namelist())
    migrations = REPO / "gateway" / "store" / "migrations"
    expected = [p for p in migrations.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.parent.name == "versions" for p in expected)
    for path in expected:
        assert path.relative_to(REPO).as_posix() in names, path
    for path in (REPO / "rules").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            inside = "gateway/rules_data/" + path.relative_to(REPO / "rules").as_posix()
            assert inside in names, inside


@pytest.mark.slow
def test_installed_wheel_upgrades_an_empty_database(installed, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    _run([str(installed / "mailwarden"), "db", "upgrade", "--url", url], cwd=tmp_path, env=_env())
    done = _run(
        [str(installed / "mailwarden"), "db", "current", "--url", url], cwd=tmp_path, env=_env()
    )
    heads = sorted(
        p.name.split("_")[0] for p in (REPO / "gateway/store/migrations/versions").glob("*.py")
    )
    assert heads[-1] in done.stdout, done.stdout
