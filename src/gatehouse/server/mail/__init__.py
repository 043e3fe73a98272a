"""Mail: messages built from overridable templates, queued in a durable outbox and sent
by a background worker over SMTP (or written as .eml files), outside every request."""
