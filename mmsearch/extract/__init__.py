"""Turn one file into what the model reads, with a locator; nothing here knows the store."""
