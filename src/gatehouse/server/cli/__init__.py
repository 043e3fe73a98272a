"""The `gatehouse` command line: parse arguments, call services, print."""
