"""Small shared helpers: the CLI error path, YAML configs, device selection, atomic writes."""
