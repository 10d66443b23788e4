"""Sender authentication: SPF, DKIM, ARC and DMARC (see docs/authentication.md)."""

from filters.auth.filter import AuthEvidence, AuthFilter
from filters.auth.results import (
    authentication_results,
    claims_authserv_id,
    forged_results_dropper,
)

__all__ = [
    "AuthEvidence",
    "AuthFilter",
    "authentication_results",
    "claims_authserv_id",
    "forged_results_dropper",
]
