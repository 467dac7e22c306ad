"""skills-hub: a self-hosted, git-backed registry for agent skills."""

__version__ = "0.1.0"
