"""Storage: the engine, the tables, the migrations, and every query, named and split by
aggregate. Callers pass a session (one transaction); only use cases and the delivery engine
open one."""
