"""Analyses of trained models.

* :mod:`.embeddings` — embedding structure: cosine-similarity PCA, separation scores, nulls;
* :mod:`.scores` — those scores over the seeds of trained runs, and the exact permutation test
  over seeds behind the analysis verdicts (notebooks 06, 07);
* :mod:`.sublayers` — attention vs FFN: norm ratios and ablations per recurrence step (notebook 07);
* :mod:`.synergy` — an a priori synergy score for pairs of operations (notebook 08);
* :mod:`.models` — picking and loading trained runs of a sweep for analysis (the compared width,
  and whether the models there learned the task at all);
* :mod:`.viz` — the analysis figures and the interactive explorers.
"""
