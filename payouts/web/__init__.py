"""Flask blueprints: thin views that check access, parse forms and call services."""
