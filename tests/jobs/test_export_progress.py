"""`retcore export` draws a progress bar over the figures it writes (stderr), ending at the figures written."""
from __future__ import annotations

import re


def test_export_bar_counts_the_figures_written(tiny_pipeline, tmp_path, capsys):
    from jobs.export import run_export

    result = run_export(tiny_pipeline["run_id"], tmp_path / "fig", db=tiny_pipeline["db"], n_boot=50,
                        n_permutations=19)
    figures = len([f for f in result.files if f.suffix == ".svg"])
    err = capsys.readouterr().err
    final = re.findall(rf"export {re.escape(result.run_id)}: 100%\|.*?\| (\d+)/(\d+) \[[^\]]*figure", err)
    assert final and final[-1] == (str(figures), str(figures)), err


def test_expected_figures_matches_what_is_written(tiny_pipeline, tiny_explained, tmp_path):
    """The bar's first total is exact on a plain and on an explained run."""
    from jobs.export import _expected_figures, load_run_data, run_export

    for case in (tiny_pipeline, tiny_explained):
        data = load_run_data(case["db"], case["run_id"], "test", n_boot=50, n_permutations=19)
        expected = _expected_figures(data)
        result = run_export(case["run_id"], tmp_path / case["db"].parent.name, db=case["db"], n_boot=50,
                            n_permutations=19)
        assert expected == len([f for f in result.files if f.suffix == ".svg"])
