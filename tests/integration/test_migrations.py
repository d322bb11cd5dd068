"""The frozen migrations produce exactly the schema the typed mappings describe."""

from __future__ import annotations

from sqlalchemy import Engine, MetaData, text

from loadtests.sweeper import downgrade_to_main
from orchestrator.store.database import make_engine, migrate
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


def _schema(engine: Engine) -> dict[str, set[str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'")).all()
        options = conn.execute(
            text("SELECT relname, reloptions::text FROM pg_class WHERE reloptions IS NOT NULL")
        ).all()
    schema: dict[str, set[str]] = {}
    for table, definition in [*rows, *options]:
        schema.setdefault(table, set()).add(definition)
    return schema


def test_the_newest_migration_goes_down_to_mains_schema_and_up_again(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        newest = _schema(engine)
        downgrade_to_main(engine)  # the cliffs migration (0012) undone, and any after it
        before = _schema(engine)
        migrate(engine)
        again = _schema(engine)
    finally:
        engine.dispose()
    assert again == newest
    assert (
        "CREATE INDEX ix_executions_state_updated ON public.executions USING btree (state, updated_at)"
        in (before["executions"])
    )
    assert not [d for d in newest["executions"] if "updated_at" in d]
