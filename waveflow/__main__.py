"""``python -m waveflow`` (and ``accelerate launch -m waveflow train ...``)."""

import sys

from .cli import main

sys.exit(main())
