"""The Gatehouse server: accounts, tokens, sessions and their HTTP API and CLI.

Needs the `server` extra. Entry points are `gatehouse.server.http.app.create_app` and the
`gatehouse` console script (`gatehouse.server.cli.main`).
"""
