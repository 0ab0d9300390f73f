"""Pure domain logic: money, valuation, allocation, state machines, errors.

Standard library only: nothing here imports Flask, SQLAlchemy, RQ or the rest of the app,
so the money math can be tested and benchmarked without a database.
"""
