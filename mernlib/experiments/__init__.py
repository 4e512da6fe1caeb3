"""Full-scale reproduction runs, one module per paper (``python -m mernlib reproduce NAME``).

Each module's ``reproduce(corpora, data_dir, seed, results_dir, scale, only)`` trains on the real
corpora, evaluates on the standard protocols (and the paper's own where it differs), and writes
``results/<name>/...`` with the published numbers (``mernlib/reference/``) beside ours and the
provenance of every number (:func:`mernlib.report.run_record`).
"""
