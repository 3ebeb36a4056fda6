"""Everything that produces traces: prompt loading, generation backends, filtering."""
