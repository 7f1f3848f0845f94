"""``python -m amprenta_backup.cli``."""

from __future__ import annotations

import sys

from amprenta_backup.cli.main import main

sys.exit(main())
