"""Wire formats: one WebSocket text frame in, one typed event out. Pure; never raises on input."""
