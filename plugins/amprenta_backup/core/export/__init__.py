"""Project export and import: one project's rows across every related table, as a ZIP.

:mod:`.graph` reads the foreign-key graph from ``pg_catalog``; :mod:`.select` computes, inside
one REPEATABLE READ snapshot, the key sets of the rows that belong to the chosen projects
(descendants of the root rows and everything they reference); :mod:`.writer` streams them
with ``COPY ... TO STDOUT`` into one ZIP in backup storage; :mod:`.archive` reads and verifies
an export; :mod:`.plan` and :mod:`.load` check a target database and load an export into it
in one transaction.
"""
