"""Payment rails: how a disbursement's money leaves the exchange, behind one interface.

``base`` defines the interface (orders in, one result per order out); ``sandbox`` is a simulated
bank with its own book, ``zengin`` writes 総合振込 files that staff upload to the bank.
"""
