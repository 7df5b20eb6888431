"""SCIM filters compile to SQL with bound parameters (RFC 7644 §3.4.2.2, DESIGN §7)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from idp_sync.directory.models import DirectoryUser
from idp_sync.directory.scim.errors import InvalidFilter
from idp_sync.directory.scim.filters import GROUP_ATTRS, USER_ATTRS, parse_filter


def _sql(expression: str) -> tuple[str, dict]:
    compiled = (
        select(DirectoryUser.id)
        .where(parse_filter(expression, USER_ATTRS))
        .compile(dialect=postgresql.dialect())
    )
    return str(compiled), compiled.params


def test_values_are_bound_parameters() -> None:
    sql, params = _sql('userName eq "robert\'); DROP TABLE users;--"')
    assert "DROP TABLE" not in sql
    assert "robert'); drop table users;--" in params.values()


def test_operators_compile() -> None:
    sql, params = _sql(
        'userName sw "a" and (emails.value ew ".com" or not (externalId eq "x")) '
        'and meta.lastModified gt "2024-01-01T00:00:00Z" and title pr'.replace(
            " and title pr", " and displayName pr"
        )
    )
    # userName is compared on its stored lower-cased key (no lower() in SQL).
    assert "directory_users.user_name_key LIKE" in sql
    assert "NOT" in sql and " OR " in sql
    assert len(params) >= 4


@pytest.mark.parametrize(
    ("expression", "attrs", "column"),
    [
        ('userName eq "Ada@Example.COM"', USER_ATTRS, "directory_users.user_name_key"),
        ('emails.value eq "Ada@Example.COM"', USER_ATTRS, "directory_users.email"),
        ('displayName eq "Ada@Example.COM"', GROUP_ATTRS, "directory_groups.display_name_key"),
    ],
)
def test_lowered_key_columns_are_compared_without_lower(expression, attrs, column) -> None:
    """The columns the mirror stores lower-cased are compared as they are, so that the
    per-directory unique index answers Okta's and Entra ID's lookups before a create."""
    condition = parse_filter(expression, attrs)
    compiled = condition.compile(dialect=postgresql.dialect())
    assert str(compiled).startswith(f"{column} = ")
    assert "lower(" not in str(compiled)
    assert list(compiled.params.values()) == ["ada@example.com"]


@pytest.mark.parametrize(
    "expression",
    ['password eq "x"', "userName", 'userName eq "a" and', 'members[value eq "x"]'],
)
def test_unknown_or_broken_filters_raise(expression) -> None:
    with pytest.raises(InvalidFilter):
        parse_filter(expression, USER_ATTRS)


def test_group_member_filter_is_a_subquery() -> None:
    condition = parse_filter('members[value eq "directory_user_1"]', GROUP_ATTRS)
    assert "directory_group_members" in str(condition)
