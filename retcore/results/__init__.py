"""Reading results: every query of the results database, and the tables computed from them.

Data flows one way: files -> jobs -> DuckDB -> ``retcore.results`` -> dashboard / export.
Jobs write through ``retcore.storage``; everything that reads results goes through
this package, so each rule and table exists once. Every read function takes an
executor first (:mod:`retcore.results.executor`: the dashboard's cached query, or a
DuckDB connection). One topic per module, imported by name
(``from retcore.results import headline``):

- ``executor``: how SQL runs; table and column lists;
- ``explained``: which class's map an image contributes (the explained-class rule);
- ``runs``: runs, classes, splits, methods, training curves;
- ``lookups``: what jobs look up before they work, and what a rerun skips;
- ``predictions``: per-image predictions, confusion counts, stored metrics;
- ``headline``: the classification report (headline, per class, AUROC, reliability, ROC);
- ``strata``: eye / quality strata and accuracy across them;
- ``zones``: zone scores joined with predictions, zone tests, confidence vs focus;
- ``drift``: mean maps and drift between classes, zone-score drift;
- ``quality``: the image-quality page's tables;
- ``cases``: galleries, one case, maps of a few images;
- ``compare``: two runs or methods on the same images;
- ``study``: the shortcut study's reads;
- ``format``: numbers as text (intervals, p-values).
"""
