"""Storage: tables and engine (SQLAlchemy Core over psycopg 3), accounts, records as chunk rows."""
