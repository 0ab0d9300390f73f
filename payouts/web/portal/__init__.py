"""The customer portal: a customer's own losses and claims, and nobody else's."""
