"""Built-in implementations of selfspec's hooks, registered exactly like third-party plugins."""
