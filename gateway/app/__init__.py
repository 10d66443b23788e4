"""Process wiring: the server, worker processes, housekeeping."""
