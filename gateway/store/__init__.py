"""The books on disk: database, ledger, quarantine, attachments, antivirus policies, spool."""
