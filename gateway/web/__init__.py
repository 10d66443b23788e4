"""The console and JSON API (FastAPI + Jinja2): quarantine review, domain settings,
users and the audit log, each person seeing only their own domains."""
