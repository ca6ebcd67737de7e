"""``python -m pymemflow ...`` is the ``pymemflow`` command."""

import sys

from .cli.main import main

sys.exit(main())
