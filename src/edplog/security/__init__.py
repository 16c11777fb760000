"""Who is asking, and may they: principals and the authorizer the broker consults.

Today every connection is ``User:ANONYMOUS`` and the authorizer allows everything; the
security work adds TLS and SASL principals, ACLs and roles behind the same two names.
"""

from __future__ import annotations

from .authorizer import AllowAll, Authorizer, Operation, Resource, authorized_operations
from .principal import ANONYMOUS, Principal

__all__ = [
    "ANONYMOUS",
    "AllowAll",
    "Authorizer",
    "Operation",
    "Principal",
    "Resource",
    "authorized_operations",
]
