"""The append-only, hash-chained audit trail. Services write events; nothing edits them."""
