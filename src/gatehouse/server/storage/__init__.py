"""Storage: SQLAlchemy 2 (async, Core) tables, repositories and Alembic migrations.

The only package that imports SQLAlchemy. It implements the repository protocols of the
concern folders and turns an unreachable database into `StorageUnavailableError`.
"""
