"""SMTP out: delivery to the next hop with retries, and delivery status notifications."""
