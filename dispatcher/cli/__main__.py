"""``python -m dispatcher.cli`` is the ``fleetd`` command."""

import sys

from dispatcher.cli import main

sys.exit(main())
