"""Everything that trains students."""
