"""The store of record (LanceDB, local or on object storage) and its search snapshot."""
