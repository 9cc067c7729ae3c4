"""`python -m viewer` runs the RadLens command line (the viewer by default)."""

import sys

try:
    from viewer.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command line itself loads: no traceback
    sys.exit(130)

sys.exit(main())
