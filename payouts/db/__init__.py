"""Persistence: SQLAlchemy 2.x typed models, exact column types and the session factory."""
