"""A built-in Genesys Cloud simulator speaking the real wire formats (see ``server.py``)."""
