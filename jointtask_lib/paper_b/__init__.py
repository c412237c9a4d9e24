"""Paper B — Bhasin et al., *How does Multi-Task Training Affect Transformer In-Context
Capabilities?* (NAACL 2024) — in one place.

==================  ================================================================================
``icl``             curricula, baselines (least squares, k-NN, averaging), error curves, head scores
``icl_model``       the in-context regression model: paper A's backbone with a linear read-in/out
``icl_step``        the model's loss and gradients by hand (read-in, read-out, MSE) for the fast step
``icl_train``       stacked training, evaluation and run records (through :mod:`jointtask_lib.runs`)
``records``         the run records as typed objects (curves, evaluations, runs); on disk unchanged
``plots_icl``       figures of notebook 09
``section``         the section: summary statistics, verdict rules and paper B's claims
==================  ================================================================================

The function classes themselves are a task registry (:mod:`jointtask_lib.tasks.functions`), beside
paper A's, on the tasks floor.  Import the modules you need (``from jointtask_lib.paper_b import
icl_train``); this package imports nothing by itself, so importing one does not pull in torch.
"""
