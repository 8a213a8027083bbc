"""``python -m airflow_provider_patsnap.testing.emulator``: serve the emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
