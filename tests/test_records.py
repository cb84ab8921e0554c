import json

import pytest

from edge.records import DecisionLog, DecisionRecord, read_records


def test_record_validation_and_json():
    r = DecisionRecord(image="a.png", decision="NG", score=1.5, raw_score=20.0, mask="m.png")
    d = json.loads(r.to_json())
    assert d["decision"] == "NG" and d["score"] == 1.5 and "timestamp" in d and "error" not in d
    with pytest.raises(ValueError):
        DecisionRecord(image="a.png", decision="MAYBE")
    with pytest.raises(ValueError):
        DecisionRecord(image="a.png", decision="ERROR")  # an ERROR needs a message


def test_log_appends_and_repairs_torn_tail(tmp_path):
    p = tmp_path / "results.jsonl"
    with DecisionLog(p) as log:
        log.append(DecisionRecord(image="1.png", decision="OK", score=0.5, raw_score=5.0))
        log.append(DecisionRecord(image="2.png", decision="NG", score=2.0, raw_score=20.0))
    with open(p, "ab") as f:  # a power cut mid-write leaves half a line
        f.write(b'{"image":"3.png","deci')
    with DecisionLog(p) as log:
        assert log.repaired_bytes == len(b'{"image":"3.png","deci')
        log.append(DecisionRecord(image="3.png", decision="OK", score=0.4, raw_score=4.0))
    recs = read_records(p)
    assert [r["image"] for r in recs] == ["1.png", "2.png", "3.png"]
