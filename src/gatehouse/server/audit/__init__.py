"""Audit events: who did what, when, from where (stored by a later issue; logged now)."""
