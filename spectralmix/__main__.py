"""`python -m spectralmix ...`: the same command line as the `spectralmix` script."""

import sys

from spectralmix.cli import main

sys.exit(main())
