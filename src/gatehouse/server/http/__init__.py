"""HTTP adapter: the FastAPI app, thin routers, dependencies and the one error mapping.

Routers parse input, call a service, shape the output. They never catch a domain error and
never hold business rules.
"""
