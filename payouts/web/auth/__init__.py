"""Login and logout for every role."""
