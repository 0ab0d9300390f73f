"""Use cases: one function per action, shared by the web, the CLI and the workers.

Each takes a SQLAlchemy Session and an Actor, checks the actor's role, changes the records and
writes the audit event in one transaction. No Flask, no RQ.
"""
