"""The README's configuration tables: ``python -m amprenta_backup.core.settings``."""

from amprenta_backup.core.settings import ALL
from amprenta_backup.core.settings.base import markdown

print(markdown(ALL))
