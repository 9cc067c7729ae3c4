"""`python -m viewer` runs the RadLens command line (the viewer by default)."""

import sys

from viewer.cli import main

sys.exit(main())
