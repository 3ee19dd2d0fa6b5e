"""The HTTP layer (aiohttp): routes, request parsing, auth and error bodies. Handlers stay thin."""
