"""DNS blocklists (DNSBL/URIBL) for the client, sender and URLs, with their cache."""
