"""Ship rules/ (model, symbol weights, signatures, profiles) inside the wheel.

All metadata is in pyproject.toml; this file only copies the data directory into
the built package as gateway/rules_data, where gateway.paths finds it through
importlib.resources. An editable install keeps reading the checkout's rules/.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RULES = Path(__file__).resolve().parent / "rules"


class BuildPyWithRules(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "gateway" / "rules_data"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(RULES, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithRules})
