"""Everything that measures: lm-eval runs over recipe benchmarks, comparison tables and the release gate."""
