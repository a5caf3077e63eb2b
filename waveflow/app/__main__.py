"""``python -m waveflow.app [options]``: the demo without the ``waveflow`` command (same options as
``waveflow demo``)."""

import sys

from .server import main

sys.exit(main())
