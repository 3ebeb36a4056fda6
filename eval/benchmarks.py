"""Moved to the core: the benchmark registry is ``distill.benchmarks``, shared by eval, decontamination and
the model card. This name stays for code that imported it (custom task YAMLs' ``utils``)."""

from distill.benchmarks import (  # noqa: F401
    BENCHMARKS,
    LETTERS,
    Benchmark,
    default_data_dir,
    load_rows,
    local_file,
)
