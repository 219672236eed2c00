"""``python -m pytest_actbudget``: the same as the ``actbudget`` command."""

from __future__ import annotations

import sys

from pytest_actbudget.cli import main

if __name__ == "__main__":
    sys.exit(main())
