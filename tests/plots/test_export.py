"""save_chart / chart_bytes: valid SVG, 300-ppi PNG and PDF files."""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

import retcore.plots as rp


@pytest.fixture(scope="module")
def chart():
    confusion = pd.DataFrame({"true_label": ["a", "a", "b"], "pred_label": ["a", "b", "b"], "count": [3, 1, 2]})
    return rp.confusion_matrix_chart(confusion, title="Test")


def _png_info(data: bytes) -> tuple[int, int, int]:
    """(width, height, pixels per metre) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    at = data.index(b"pHYs")
    ppm_x, ppm_y, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    assert unit == 1 and ppm_x == ppm_y
    return width, height, ppm_x


def test_save_chart_writes_svg_png_pdf(chart, tmp_path):
    svg = rp.save_chart(chart, tmp_path / "fig.svg")
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg") and svg.read_text().startswith("<svg")
    svg_w, svg_h = float(root.get("width")), float(root.get("height"))
    assert "Arial" in svg.read_text()  # the theme's font reached the renderer

    png = rp.save_chart(chart, tmp_path / "sub" / "fig.png")
    width, height, ppm = _png_info(png.read_bytes())
    assert round(ppm * 0.0254) == 300
    assert width == pytest.approx(svg_w * 300 / 72, rel=0.02) and height == pytest.approx(svg_h * 300 / 72, rel=0.02)

    pdf = rp.save_chart(chart, tmp_path / "fig.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 500


def test_chart_bytes_for_downloads_and_errors(chart, tmp_path):
    assert rp.chart_bytes(chart, "svg").lstrip().startswith(b"<svg")
    assert rp.chart_bytes(rp.heatmap_grid_chart(np.eye(3)), "PNG")[:4] == b"\x89PNG"
    _, _, ppm = _png_info(rp.chart_bytes(chart, "png", ppi=150))
    assert round(ppm * 0.0254) == 150
    with pytest.raises(ValueError, match="format"):
        rp.chart_bytes(chart, "gif")
    with pytest.raises(ValueError, match=r"\.svg, \.png or \.pdf"):
        rp.save_chart(chart, tmp_path / "fig.jpg")
