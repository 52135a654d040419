"""Balsam 0.x's ``balsam.launcher`` package, kept for ``balsam.launcher.dag``."""
