"""The settings tables of docs/configuration.md: ``python -m amprenta_backup.core.settings``
prints them; ``--write PATH`` replaces the generated block between the markers in PATH."""

import sys
from pathlib import Path

from amprenta_backup.core.settings import ALL
from amprenta_backup.core.settings.base import TABLES_BEGIN as BEGIN
from amprenta_backup.core.settings.base import TABLES_END as END
from amprenta_backup.core.settings.base import markdown

if len(sys.argv) == 3 and sys.argv[1] == "--write":
    path = Path(sys.argv[2])
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{path} has no generated-settings markers; add {BEGIN.strip()} and "
                 f"{END.strip()} where the tables go")
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + markdown(ALL) + END + rest.split(END, 1)[1], encoding="utf-8")
    print(f"{path}: settings tables regenerated")
else:
    print(markdown(ALL))
