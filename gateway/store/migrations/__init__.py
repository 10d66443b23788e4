"""Alembic schema migrations: env.py, the revision template and versions/.

Shipped as package data so an installed mailwarden can upgrade its own database
(`mailwarden db upgrade`). Every new table or column gets a revision in versions/
whose down_revision is the current head; `mailwarden db revision -m "..."` writes
one from the difference between the metadata and the migrations.
"""
