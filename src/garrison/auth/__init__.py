"""Authentication and authorisation: users, tokens, roles, API keys, service clients."""
