"""Who acts, and the errors an action answers with (not found, refused, bad input).

An actor is a console user (their role and domains) or the operator at a node's
shell (all domains). "Not found" is what an actor hears about an object of a domain
that is not theirs, so nothing confirms that it exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.store.users import ABUSE_STAFF, DOMAIN_ADMIN, OPERATOR, User


class ActionError(Exception):
    """An action refused for bad input or a wrong state; `status` is the HTTP code."""

    status = 409


class NotFound(ActionError):
    """No such object, or not one of the actor's domains (the same answer for both)."""

    status = 404


class BadInput(ActionError):
    status = 422


class Forbidden(ActionError):
    """The actor's role may not do this (at all, in any domain)."""

    status = 403


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    domains: tuple[str, ...]
    address: str  # the client's address, or "cli"

    @classmethod
    def cli(cls, name: str) -> Actor:
        """The operator at a node's shell: every domain."""
        return cls(name, OPERATOR, (), "cli")

    @classmethod
    def of(cls, user: User, address: str) -> Actor:
        return cls(user.name, user.role, user.domains, address)

    @property
    def all_domains(self) -> bool:
        return self.role == OPERATOR

    def may_see(self, domain: str | None) -> bool:
        if self.all_domains:
            return True
        return domain is not None and domain.lower().rstrip(".") in self.domains

    def visible(self, domains: Sequence[str]) -> list[str]:
        return [d for d in domains if self.may_see(d)]

    def require_domain(self, domain: str) -> str:
        """The domain, lowercased, if the actor may see it; else NotFound."""
        cleaned = domain.strip().lower().rstrip(".")
        if not cleaned or not self.may_see(cleaned):
            raise NotFound(f"{domain}: no such domain")
        return cleaned

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"{self.name} ({self.role}) may not do this")


# who may do what: operators everything; abuse staff the quarantine of their domains;
# domain admins their domains' settings (lists, policies, rules)
QUARANTINE_ROLES = (OPERATOR, ABUSE_STAFF)
SETTINGS_ROLES = (OPERATOR, DOMAIN_ADMIN)
ATTACHMENT_ROLES = (OPERATOR, ABUSE_STAFF)  # "downloadable for staff"
