"""Where uploaded files are spooled: the configured upload directory, never a web root.

Werkzeug writes any upload larger than 500 KB to a temporary file as the request is parsed.
Pointing that file at PAYOUTS_UPLOAD_DIR (private to this process, removed when closed)
means a 500 MB loss file is written once, where operators expect it, and the import reads it
in place instead of copying it again.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import IO

from flask import Request, current_app


IN_MEMORY_BYTES = 500 * 1024


class SpoolingRequest(Request):
    def _get_file_stream(  # type: ignore[override]
        self, total_content_length: int | None, content_type: str | None, filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        if total_content_length is not None and total_content_length <= IN_MEMORY_BYTES:
            return io.BytesIO()  # small forms stay in memory, as Werkzeug would keep them
        folder = current_app.extensions["payouts"].config.upload_dir
        os.makedirs(folder, mode=0o700, exist_ok=True)
        # Unnamed where the platform allows it: nothing is left behind if the process dies.
        return tempfile.TemporaryFile("wb+", dir=folder, prefix="upload-")
