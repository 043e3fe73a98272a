"""Client SDK for programs that log in to Gatehouse (sync and async, httpx only).

The SDK arrives with a later issue; this package exists now so the import rules that keep it
free of server code hold from the first commit.
"""
