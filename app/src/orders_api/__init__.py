"""orders-api: an orders HTTP API with PostgreSQL as the source of truth and Redis as a shared cache."""

__version__ = "1.0.0"
