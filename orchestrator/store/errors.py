"""The database's errors, as the layers above the store catch them (they never import SQLAlchemy themselves)."""

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

#: The database could not be reached or gave no connection in time: worth retrying, not a bug.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)

__all__ = [
    "DATABASE_UNAVAILABLE",
    "DBAPIError",
    "DataError",
    "IntegrityError",
    "InterfaceError",
    "OperationalError",
    "PoolTimeout",
    "SQLAlchemyError",
]
