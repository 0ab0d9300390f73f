"""The back office: incidents, reference prices and loss imports (staff write, regulators read)."""
