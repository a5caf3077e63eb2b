"""``python -m waveflow.corpus``: the corpus maker's command line (see :mod:`waveflow.corpus.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
