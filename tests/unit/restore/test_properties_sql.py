"""Database properties to SQL: list settings split as the server splits them, ACL in order."""

from __future__ import annotations

import pytest

from amprenta_backup.core.dbprops import AclEntry, DatabaseProperties
from amprenta_backup.core.restore.properties import (
    _split_list,
    create_options,
    property_statements,
)

PROPS = DatabaseProperties(
    name="app", owner="app_owner", encoding="UTF8", collate="C", ctype="C",
    locale_provider="icu", locale="en-US", comment="it's ours", connection_limit=5,
    acl=(AclEntry("app_owner", "app_owner", ("CONNECT", "CREATE", "TEMPORARY")),
         AclEntry("app_ro", "app_owner", ("CONNECT",)),
         AclEntry(None, "app_owner", ("TEMPORARY",))),
    settings=("work_mem=8MB", 'search_path=app, "$user", "My Schema"'),
    role_settings={"app_ro": ("statement_timeout=30s",)})


@pytest.mark.parametrize(("value", "items"), [
    ("app, public", ["app", "public"]),
    ('"$user", public', ["$user", "public"]),
    ('"My ""Quoted"" Schema",x', ['My "Quoted" Schema', "x"]),
    ("", []),
])
def test_list_settings_split_like_the_server(value: str, items: list[str]) -> None:
    assert _split_list(value) == items


def test_statements_set_everything_and_grant_the_acl_in_order() -> None:
    text = [s.as_string(None) for _, s in property_statements("app", PROPS, no_owner=False)]
    assert 'ALTER DATABASE "app" SET "work_mem" TO \'8MB\'' in text
    assert 'ALTER DATABASE "app" SET "search_path" TO \'app\', \'$user\', \'My Schema\'' in text
    assert 'ALTER ROLE "app_ro" IN DATABASE "app" SET "statement_timeout" TO \'30s\'' in text
    assert 'COMMENT ON DATABASE "app" IS \'it\'\'s ours\'' in text
    grants = [t for t in text if t.startswith(("REVOKE", "GRANT"))]
    assert grants == ['REVOKE ALL ON DATABASE "app" FROM PUBLIC',
                      'REVOKE ALL ON DATABASE "app" FROM "app_owner"',
                      'GRANT CONNECT, CREATE, TEMPORARY ON DATABASE "app" TO "app_owner"',
                      'GRANT CONNECT ON DATABASE "app" TO "app_ro"',
                      'GRANT TEMPORARY ON DATABASE "app" TO PUBLIC']


def test_no_owner_keeps_only_what_public_may_do() -> None:
    text = [s.as_string(None) for _, s in property_statements("app", PROPS, no_owner=True)]
    assert [t for t in text if t.startswith(("REVOKE", "GRANT"))] == [
        'REVOKE ALL ON DATABASE "app" FROM PUBLIC',
        'GRANT TEMPORARY ON DATABASE "app" TO PUBLIC']
    assert not any("ALTER ROLE" in t for t in text)
    assert "OWNER" not in create_options(PROPS, no_owner=True).as_string(None)


def test_create_options_carry_encoding_locale_and_owner() -> None:
    assert create_options(PROPS, no_owner=False).as_string(None) == (
        "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
        'OWNER "app_owner"')
    assert DatabaseProperties.from_dict(PROPS.to_dict()) == PROPS
