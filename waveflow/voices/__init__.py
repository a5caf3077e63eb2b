"""Bundled voices (package data): model files reachable by name, e.g. ``load_model("starter")``."""
