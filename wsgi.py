"""WSGI entry point for gunicorn: ``gunicorn 'wsgi:create_app()'``."""

from payouts import create_app

__all__ = ["create_app"]
