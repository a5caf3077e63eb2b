"""Folder jobs on one planner (:mod:`.planner`): ``mel``, ``vocode``, ``synth``, ``eval``, ``quickstart``."""
