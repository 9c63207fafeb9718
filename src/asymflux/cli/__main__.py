"""``python -m asymflux.cli``: the ``asymflux`` command."""

import sys

from . import main

sys.exit(main())
