"""One module per stage; each owns its settings model and its pure functions, with a thin Prefect task on top."""
