"""Real services (storage servers, batch systems) started by test fixtures on 127.0.0.1."""
