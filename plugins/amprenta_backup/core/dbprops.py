"""Database properties: what ``pg_dump`` without ``--create`` leaves out, read from the catalog.

Owner, encoding, collation/ctype and locale provider, ACL, per-database and
per-role-in-database settings, comment, connection limit, tablespace, and the installed
extensions. A backup records them in its manifest; a restore re-creates them
(``core/restore/properties.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

Connection = psycopg.Connection[tuple[Any, ...]]

_DATABASE = """
SELECT to_jsonb(d), pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), t.spcname,
       shobj_description(d.oid, 'pg_database')
FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace
WHERE d.datname = current_database()
"""
_ACL = """
SELECT a.ord, CASE WHEN x.grantee = 0 THEN NULL ELSE pg_get_userbyid(x.grantee) END,
       pg_get_userbyid(x.grantor), x.privilege_type, x.is_grantable
FROM pg_database d, unnest(d.datacl) WITH ORDINALITY AS a(item, ord),
     LATERAL aclexplode(ARRAY[a.item]) AS x
WHERE d.datname = current_database() AND d.datacl IS NOT NULL
ORDER BY a.ord, x.privilege_type
"""
_SETTINGS = """
SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
WHERE d.datname = current_database()
ORDER BY 1 NULLS FIRST
"""
_EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1
"""
# every role an object in this database depends on (owner, ACL, policy), plus the roles that
# own schemas, relations, functions or types without a pg_shdepend row (the bootstrap role)
_ROLES = """
SELECT pg_get_userbyid(s.refobjid) FROM pg_shdepend s JOIN pg_database d
    ON d.oid = s.dbid OR (s.dbid = 0 AND s.classid = 'pg_database'::regclass AND s.objid = d.oid)
WHERE d.datname = current_database() AND s.refclassid = 'pg_authid'::regclass
UNION
SELECT pg_get_userbyid(owner) FROM (
    SELECT nspowner AS owner, oid AS nsp, oid AS obj, 'pg_namespace'::regclass AS cls
    FROM pg_namespace
    UNION ALL SELECT relowner, relnamespace, oid, 'pg_class'::regclass FROM pg_class
    UNION ALL SELECT proowner, pronamespace, oid, 'pg_proc'::regclass FROM pg_proc
    UNION ALL SELECT typowner, typnamespace, oid, 'pg_type'::regclass FROM pg_type) AS o
JOIN pg_namespace n ON n.oid = o.nsp
WHERE o.owner = 10 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = o.cls AND e.objid = o.obj AND e.deptype = 'e')
ORDER BY 1
"""


@dataclass(frozen=True)
class AclEntry:
    """One ``aclitem`` of the database's ACL (``grantee`` None is PUBLIC)."""

    grantee: str | None
    grantor: str
    privileges: tuple[str, ...]
    grantable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"grantee": self.grantee, "grantor": self.grantor,
                "privileges": list(self.privileges), "grantable": list(self.grantable)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AclEntry:
        return cls(grantee=data.get("grantee"), grantor=str(data["grantor"]),
                   privileges=tuple(data.get("privileges") or ()),
                   grantable=tuple(data.get("grantable") or ()))

    def describe(self) -> str:
        """``CONNECT, TEMPORARY to app_ro`` for reports."""
        return f"{', '.join(self.privileges)} to {self.grantee or 'PUBLIC'}"


@dataclass(frozen=True)
class Extension:
    """An installed extension."""

    name: str
    version: str
    schema: str


@dataclass(frozen=True)
class DatabaseProperties:
    """A database's properties as the catalog holds them.

    :param owner: the owning role
    :param encoding: ``UTF8`` ...
    :param collate: ``LC_COLLATE`` (libc)
    :param ctype: ``LC_CTYPE`` (libc)
    :param locale_provider: ``libc``, ``icu`` (15+) or ``builtin`` (17+)
    :param locale: the ICU (or builtin) locale, if that provider is used
    :param icu_rules: ICU tailoring rules (16+)
    :param acl: the ACL in ``datacl`` order; None is the default (PUBLIC may connect)
    :param settings: ``ALTER DATABASE ... SET`` values, as ``name=value``
    :param role_settings: ``ALTER ROLE r IN DATABASE ... SET`` values, per role
    :param roles: every role the database's objects, ACLs and settings name
    """

    name: str
    owner: str
    encoding: str
    collate: str
    ctype: str
    locale_provider: str = "libc"
    locale: str | None = None
    icu_rules: str | None = None
    collation_version: str | None = None
    tablespace: str = "pg_default"
    connection_limit: int = -1
    is_template: bool = False
    comment: str | None = None
    acl: tuple[AclEntry, ...] | None = None
    settings: tuple[str, ...] = ()
    role_settings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extensions: tuple[Extension, ...] = ()
    roles: tuple[str, ...] = ()

    def all_roles(self) -> tuple[str, ...]:
        """Every role a faithful restore needs on the target server."""
        names = {self.owner, *self.roles, *self.role_settings}
        for entry in self.acl or ():
            names.update(n for n in (entry.grantee, entry.grantor) if n)
        return tuple(sorted(names))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["acl"] = None if self.acl is None else [e.to_dict() for e in self.acl]
        data["settings"] = list(self.settings)
        data["role_settings"] = {r: list(v) for r, v in self.role_settings.items()}
        data["extensions"] = [asdict(e) for e in self.extensions]
        data["roles"] = list(self.roles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatabaseProperties:
        values = dict(data)
        acl = values.get("acl")
        values["acl"] = None if acl is None else tuple(AclEntry.from_dict(e) for e in acl)
        values["settings"] = tuple(values.get("settings") or ())
        values["role_settings"] = {r: tuple(v) for r, v in
                                   (values.get("role_settings") or {}).items()}
        values["extensions"] = tuple(Extension(**e) for e in values.get("extensions") or ())
        values["roles"] = tuple(values.get("roles") or ())
        return cls(**values)

    def comparable(self) -> dict[str, Any]:
        """Everything but the name and the version-specific collation version, for checking a
        restored database against its backup."""
        data = self.to_dict()
        for key in ("name", "collation_version"):
            data.pop(key)
        return data


def read_properties(db: Connection) -> DatabaseProperties:
    """The properties of the database ``db`` is connected to (read-only, any major >= 14)."""
    row = db.execute(_DATABASE).fetchone()
    if row is None:
        raise LookupError("current_database() is not in pg_database")
    raw, owner, encoding, tablespace, comment = row
    provider = {"c": "libc", "i": "icu", "b": "builtin"}.get(raw.get("datlocprovider") or "c",
                                                              "libc")
    locale = raw.get("datlocale", raw.get("daticulocale"))
    has_acl = raw.get("datacl") is not None
    return DatabaseProperties(
        name=raw["datname"], owner=owner, encoding=encoding, collate=raw["datcollate"],
        ctype=raw["datctype"], locale_provider=provider,
        locale=locale if provider != "libc" else None, icu_rules=raw.get("daticurules"),
        collation_version=raw.get("datcollversion"), tablespace=tablespace,
        connection_limit=int(raw["datconnlimit"]), is_template=bool(raw["datistemplate"]),
        comment=comment, acl=_acl(db) if has_acl else None, settings=_db_settings(db),
        role_settings=_role_settings(db), extensions=_extensions(db),
        roles=tuple(str(r[0]) for r in db.execute(_ROLES).fetchall() if r[0]),
    )


def _acl(db: Connection) -> tuple[AclEntry, ...]:
    items: dict[int, dict[str, Any]] = {}
    for ordinal, grantee, grantor, privilege, grantable in db.execute(_ACL).fetchall():
        item = items.setdefault(int(ordinal), {"grantee": grantee, "grantor": grantor,
                                               "privileges": [], "grantable": []})
        item["privileges"].append(privilege)
        if grantable:
            item["grantable"].append(privilege)
    return tuple(AclEntry.from_dict(item) for _, item in sorted(items.items()))


def _db_settings(db: Connection) -> tuple[str, ...]:
    rows = db.execute(_SETTINGS).fetchall()
    return tuple(str(v) for role, config in rows if role is None for v in config or ())


def _role_settings(db: Connection) -> dict[str, tuple[str, ...]]:
    rows = db.execute(_SETTINGS).fetchall()
    return {str(role): tuple(str(v) for v in config or ()) for role, config in rows
            if role is not None}


def _extensions(db: Connection) -> tuple[Extension, ...]:
    return tuple(Extension(str(n), str(v), str(s))
                 for n, v, s in db.execute(_EXTENSIONS).fetchall())
