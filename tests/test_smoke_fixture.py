from edge.inspector import Inspector
from edge.imageio import read_image


def test_tiny_inspector_flags_planted_defect(tiny_inspector_ro, tiny_category):
    insp = Inspector.load(tiny_inspector_ro)
    good = [read_image(p) for p in sorted((tiny_category / "test" / "good").glob("*.png"))]
    bad = [read_image(p) for p in sorted((tiny_category / "test" / "spot").glob("*.png"))]
    g = [r.raw_score for r in insp.inspect(good)]
    b = [r.raw_score for r in insp.inspect(bad)]
    print(g, b)
    assert min(b) > max(g)
