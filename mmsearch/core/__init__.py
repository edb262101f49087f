"""The foundation every layer stands on: errors, settings, names and the vocabularies."""
