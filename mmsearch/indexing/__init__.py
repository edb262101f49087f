"""From folders to stored items: scanning, extracting, embedding, writing, watching."""
