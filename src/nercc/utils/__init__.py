"""Small helpers shared by the entry points (file output, tables)."""
