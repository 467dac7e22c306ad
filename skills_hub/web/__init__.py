"""The HTTP edge: app factory, native API, git smart HTTP, pages."""
