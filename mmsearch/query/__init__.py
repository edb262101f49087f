"""From a parsed query to ranked hits: grammar, filters, composition, search, ranking."""
