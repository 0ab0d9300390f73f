"""payouts: claims and compensation payouts for a crypto exchange.

``create_app`` builds the web application; nothing is built at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> "Flask":
    from payouts.web.app import create_app as _create_app

    return _create_app(*args, **kwargs)
