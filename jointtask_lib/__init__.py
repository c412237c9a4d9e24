"""jointtask_lib: the library behind the jointtask notebooks.

The modules read as the pipeline, each importing only those to its left:

    tasks  ->  data  ->  model  ->  train  ->  runs  ->  sweep  ->  transition / analysis  ->  plots

Notebooks under ``notebooks/`` hold prose, a ``parameters`` cell and calls into this package.
"""

__version__ = "0.1.0"
