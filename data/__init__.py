"""data: the authors, their books (fetched, checked, cleaned, split) and windows of token ids."""
