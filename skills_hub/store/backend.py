"""Open a home's storage on the backend its settings choose."""

from __future__ import annotations

from ..config import Settings
from .interfaces import Storage


def open_storage(settings: Settings) -> Storage:
    """SQLite in the home folder by default; PostgreSQL when SKILLS_HUB_DATABASE_URL is set."""
    if settings.database_url:
        from .postgres import open_postgres
        return open_postgres(settings.database_url)
    from .sqlite import open_sqlite
    return open_sqlite(settings.index_path)
