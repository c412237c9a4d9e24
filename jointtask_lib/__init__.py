"""jointtask_lib: the library behind the jointtask notebooks.

The modules read as the pipeline, each importing only those to its left:

    paths / checkpoints  ->  tasks  ->  data  ->  model  ->  train  ->  runs  ->  sweep  ->
    transition / experiments / analysis  ->  scorecard  ->  sections  ->  plots

Paper B lives in ``paper_b/`` (its model, training, figures and section).  No import cycles
(``tests/test_import_graph.py``).

Notebooks under ``notebooks/`` hold prose, a ``parameters`` cell and calls into this package.
"""

__version__ = "0.1.0"
