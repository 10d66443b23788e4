"""Allow and block lists: matching, records in the database, the live view, imports."""
