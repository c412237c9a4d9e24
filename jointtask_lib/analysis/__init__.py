"""Analyses of trained models.

* :mod:`.embeddings` — embedding structure: cosine-similarity PCA, separation scores, nulls;
* :mod:`.scores` — those scores over the seeds of trained runs (notebook 06);
* :mod:`.sublayers` — attention vs FFN: norm ratios and ablations per recurrence step (notebook 07);
* :mod:`.synergy` — an a priori synergy score for pairs of operations (notebook 08);
* :mod:`.models` — picking and loading trained runs of a sweep for analysis;
* :mod:`.viz` — the analysis figures and the interactive explorers.
"""
