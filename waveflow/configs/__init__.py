"""Bundled model/run configs (package data), found by name with :func:`waveflow.config.find_config`."""
