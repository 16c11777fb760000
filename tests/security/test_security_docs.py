"""docs/security.md's examples, run as written."""

from __future__ import annotations

from docs_examples import example, run_example


def test_the_acl_example_grants_lists_and_deletes() -> None:
    """The ACL example: a super user creates a prefixed ALLOW and a literal DENY, lists both
    and deletes both (its own assertions)."""
    run_example(example("security.md", "create_acls"), "docs/security.md")
