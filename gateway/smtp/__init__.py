"""SMTP in: the aiosmtpd handler, session limits, and intake (spool + books before 250)."""
