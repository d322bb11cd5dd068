"""The frozen migrations produce exactly the schema the typed mappings describe."""

from __future__ import annotations

from sqlalchemy import MetaData

from orchestrator.store.database import make_engine
from orchestrator.store.tables import Base


def test_the_migrated_schema_matches_the_mappings(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        reflected = MetaData()
        reflected.reflect(engine)
    finally:
        engine.dispose()
    for table in Base.metadata.sorted_tables:
        assert table.name in reflected.tables, f"table {table.name} is mapped but not migrated"
        migrated = reflected.tables[table.name]
        assert set(migrated.columns.keys()) == set(table.columns.keys()), table.name
        for column in table.columns:
            assert migrated.columns[column.name].nullable == column.nullable, f"{table.name}.{column.name}"
        assert {i.name for i in migrated.indexes} >= {i.name for i in table.indexes}, table.name
