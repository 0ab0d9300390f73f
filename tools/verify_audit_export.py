#!/usr/bin/env python3
"""Verify an export of the payouts audit chain with nothing but the Python standard library.

    python3 verify_audit_export.py EXPORT.jsonl [--checkpoint SEQ:HASH ...]

EXPORT.jsonl is what `payouts audit export` writes: one {"type": "event", ...} line per event in
seq order, then one {"type": "checkpoint", ...} line per recorded checkpoint. Give the
checkpoints you received when they were published with --checkpoint: they are checked along
with those in the file. The rules are those of docs/audit-chain.md, applied as the application
applies them. Prints OK and exits 0, or names the first bad seq and what is wrong and exits 1.
"""

import argparse
import hashlib
import json
import re
import sys

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "occurred_at", "actor_user_id", "actor", "actor_role", "action",
                 "subject_type", "subject_id", "summary", "details", "request_id")
HASH = re.compile("[0-9a-f]{64}")


class Malformed(Exception):
    pass


def event_hash(prev_hash, event):
    body = {name: event[name] for name in HASHED_FIELDS}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(prev_hash.encode("ascii") + text.encode("utf-8")).hexdigest()


def is_hash(value):
    return isinstance(value, str) and HASH.fullmatch(value) is not None


def records(path, kind):
    """The file's records of one type ("event" or "checkpoint"), in file order."""
    required = {"event": (*HASHED_FIELDS, "prev_hash", "hash"), "checkpoint": ("id", "seq", "hash")}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise Malformed(f"line {number} is not JSON") from None
            if not isinstance(record, dict) or record.get("type") not in required:
                raise Malformed(f"line {number} is neither an event nor a checkpoint")
            if record["type"] != kind:
                continue
            missing = [name for name in required[kind] if name not in record]
            if missing or type(record["seq"]) is not int:
                raise Malformed(f"line {number}: a {kind} needs {', '.join(required[kind])}; seq an integer")
            yield record


def previous(seq):
    return "the genesis hash" if seq == 1 else f"event {seq - 1}"


def diagnose(event, expected, prev_hash, find_seq):
    """None if the event is event `expected` and follows prev_hash; else (first bad seq, kind, message)."""
    seq = event["seq"]
    if seq > expected:
        missing = f"event {expected} is" if seq == expected + 1 else f"events {expected}..{seq - 1} are"
        return expected, "deleted", f"{missing} missing"
    if seq < expected:
        return expected, "reordered", f"event {seq} appears again after event {expected - 1}"
    stored_prev, stored = event["prev_hash"], event["hash"]
    if not (is_hash(stored_prev) and is_hash(stored)):
        return seq, "edited", f"event {seq} has a malformed hash or prev_hash"
    if stored_prev == prev_hash:
        if event_hash(stored_prev, event) == stored:
            return None
        return seq, "edited", f"event {seq} does not match its hash: it was changed after it was written"
    after = 0 if stored_prev == GENESIS else find_seq(stored_prev)
    if after is not None and after >= seq:
        return seq, "reordered", f"event {seq} names event {after}, which comes after it, as its predecessor"
    if after is not None and after < seq - 1 and event_hash(stored_prev, {**event, "seq": after + 1}) == stored:
        first = after + 1
        inserted = f"event {first} was" if first == seq - 1 else f"events {first}..{seq - 1} were"
        return first, "inserted", f"{inserted} inserted: event {seq} was written as event {first}"
    if event_hash(stored_prev, event) != stored:
        return seq, "edited", f"event {seq} does not match its hash and does not follow {previous(seq)}"
    return seq, "broken_link", (f"event {seq} is intact but does not follow {previous(seq)}: {previous(seq)}"
                                f" was rewritten and re-hashed, or event {seq} was forged")


def verify(path, published):
    """The line verify_chain's summary() gives for the same chain, and whether it passed."""
    checkpoints = [(c["seq"], c["hash"], f"checkpoint #{c['id']}") for c in records(path, "checkpoint")]
    checkpoints = sorted(checkpoints + published, key=lambda c: c[0])
    if checkpoints and checkpoints[0][0] < 1:
        raise Malformed(f"{checkpoints[0][2]} has seq {checkpoints[0][0]}")

    def find_seq(hash_):  # asked at most once, on a broken link: read the file again
        return next((e["seq"] for e in records(path, "event") if e["hash"] == hash_), None)

    head_seq, head_hash, matched = 0, GENESIS, 0
    for event in records(path, "event"):
        expected = head_seq + 1
        problem = diagnose(event, expected, head_hash, find_seq)
        while problem is None and matched < len(checkpoints) and checkpoints[matched][0] == expected:
            _, hash_, name = checkpoints[matched]
            if hash_ != event["hash"]:
                problem = (expected, "checkpoint_mismatch",
                           (f"{name} has hash {hash_} at seq {expected}, the chain has {event['hash']}:"
                            f" the chain was rewritten at or before seq {expected}"))
            else:
                matched += 1
        if problem is not None:
            return False, "FAILED at seq {} ({}): {}".format(*problem)
        head_seq, head_hash = expected, event["hash"]
    if matched < len(checkpoints):
        _, _, name = checkpoints[matched]
        return False, (f"FAILED at seq {head_seq + 1} (truncated): {name} is at seq {checkpoints[matched][0]},"
                       f" beyond the head (seq {head_seq}): the chain was truncated")
    return True, f"OK: {head_seq} events, head seq {head_seq} hash {head_hash}, {matched} checkpoint(s) match"


def published_checkpoint(value):
    seq, _, hash_ = value.partition(":")
    if not (seq.isdigit() and int(seq) >= 1 and is_hash(hash_)):
        raise argparse.ArgumentTypeError(f"{value!r} is not SEQ:HASH (64 lowercase hex digits)")
    return int(seq), hash_, "published checkpoint"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", help="the file `payouts audit export` wrote")
    parser.add_argument("--checkpoint", action="append", default=[], type=published_checkpoint,
                        metavar="SEQ:HASH", help="a checkpoint as it was published (repeatable)")
    args = parser.parse_args()
    try:
        ok, line = verify(args.export, args.checkpoint)
    except (Malformed, OSError, UnicodeDecodeError) as exc:
        ok, line = False, f"FAILED: {exc}"
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
