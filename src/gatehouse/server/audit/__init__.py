"""The audit trail: who did what, when, from where. Events (`models`), their cleaning
(`clean`), the trail's search and pruning (`service`); storage/audit.py stores them."""
