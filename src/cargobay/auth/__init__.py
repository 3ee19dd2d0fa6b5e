"""Authentication: who the client is. Only htpasswd (bcrypt) for now."""
