"""The books read back: reports and message tracking from the ledger."""
