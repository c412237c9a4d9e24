"""Paper A's sections as library objects: one module per notebook section, each holding what the
section computes from run records and the claims it makes, so that its scorecard rows can be built
and tested from records alone (``tests/test_sections.py``), without running a notebook.

Each module names its ``NOTEBOOK`` and exposes ``claims(...)``: the scorecard rows
(:func:`jointtask_lib.scorecard.claim`) from the section's analysed records — transitions,
reduction factors, per-seed accuracies or scores, all computed from records by
:mod:`jointtask_lib.experiments` and :mod:`jointtask_lib.analysis`.  The notebooks keep the prose,
the parameters cell, the plots and a call per claim cell.

=========================  ========================================================================
notebook                   section module
=========================  ========================================================================
``01_tasks``               none: no training, no claims (its tables: :mod:`jointtask_lib.tables`)
``02_learning_transition`` :mod:`.learning_transition`: is ADD the hardest; scaling with n
``03_joint_training``      :mod:`.joint`: reduction factors of every pairing (paper A's headline)
``04_transfer``            :mod:`.transfer`: pretraining, continual vs joint, fine-tuning
``05_permutations``        :mod:`.permutations`: products in S_k with partner operations
``06_embeddings``          :mod:`.embeddings`: parity / divisibility / order structure
``07_attention_vs_ffn``    :mod:`.sublayers`: attention vs FFN reliance
``08_output_structure``    :mod:`.output_structure`: output entropy, a priori synergy
``09_icl_function_classes`` paper B's section, :mod:`jointtask_lib.paper_b.section` (paper B in one place)
=========================  ========================================================================

The modules are imported on demand (``from jointtask_lib.sections import joint``); this package
imports nothing itself.
"""

#: notebook -> module holding its section (paper B's lives with the rest of paper B).
SECTIONS = {
    "01_tasks": "jointtask_lib.tables",  # no training and no claims: tables of the registries
    "02_learning_transition": "jointtask_lib.sections.learning_transition",
    "03_joint_training": "jointtask_lib.sections.joint",
    "04_transfer": "jointtask_lib.sections.transfer",
    "05_permutations": "jointtask_lib.sections.permutations",
    "06_embeddings": "jointtask_lib.sections.embeddings",
    "07_attention_vs_ffn": "jointtask_lib.sections.sublayers",
    "08_output_structure": "jointtask_lib.sections.output_structure",
    "09_icl_function_classes": "jointtask_lib.paper_b.section",
}
