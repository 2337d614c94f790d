"""Pure domain: value types, errors and decisions, with no I/O."""
