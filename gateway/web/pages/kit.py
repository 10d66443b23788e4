"""What every page module shares: rendering a template for the signed-in user, reading
a form whose CSRF token checked out, and the redirect after a POST."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse

from gateway.web.auth import Who
from gateway.web.context import Console


class Kit:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.auth = console.auth
        self.engine = console.engine

    def render(
        self, request: Request, who: Who | None, name: str, status: int = 200, **values: Any
    ):
        return self.console.templates.TemplateResponse(
            request,
            name,
            {"who": who, "csrf": who.session.csrf if who else "", **values},
            status_code=status,
        )

    async def form_of(
        self, request: Request, who: Who, max_part_size: int = 1024 * 1024
    ) -> dict[str, Any]:
        """The form's fields once its CSRF token checked out (`ids` as a list)."""
        form = await request.form(max_part_size=max_part_size)
        self.auth.check_csrf(who, str(form.get("csrf") or ""))
        return {k: form.getlist(k) if k == "ids" else form.get(k) for k in form}

    async def posted(self, request: Request, max_part_size: int = 1024 * 1024) -> tuple[Who, dict]:
        """Who sent a form, and its fields once its CSRF token checked out."""
        who = self.auth.from_cookie(request)
        return who, await self.form_of(request, who, max_part_size)

    @staticmethod
    def back(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)
