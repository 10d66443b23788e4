"""mailwarden: an anti-spam and antivirus SMTP gateway that keeps the books on itself."""

__version__ = "0.1.0"
