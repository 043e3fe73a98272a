"""Accounts: users, their names, passwords and roles."""
