"""Actions people take (release, delete, confirm spam, list entries, policies, users):
written once, below both the CLI and the web console, each checking the actor's
domains and writing the audit log."""
