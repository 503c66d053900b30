"""Batch CSVs: every row checked first (line N: reason, the header is line 1), good rows render
while bad ones are reported, the summary CSV, the exit code, and re-runs that skip done rows
by their content (not by the files that exist)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.errors import InvalidOption, NoFaceFound

HEADER = "name,text,audio,voice,language,fps,size,format,bg_mode,blinks\n"


def write_csv(folder: Path, body: str, header: str = HEADER) -> Path:
    path = folder / "scripts.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def plan(tmp_path: Path, body: str, header: str = HEADER, **kwargs):
    from pipeline.jobs.batch import plan_batch

    return plan_batch(write_csv(tmp_path, body, header), None, tmp_path / "out", prepare=False, **kwargs)


def test_every_bad_row_is_reported_with_its_line(tmp_path, speech_wav):
    (tmp_path / "speech.wav").write_bytes(speech_wav.read_bytes())
    p = plan(tmp_path, (
        "good,Hello there.,,,,10,128,,,\n"              # line 2
        "empty,,,,,10,128,,,\n"                         # 3: nothing to say
        "voice,Hi.,,no-such-voice,,10,128,,,\n"         # 4: unknown voice
        "nofile,,missing.wav,,,10,128,,,\n"             # 5: missing file
        "fps,Hi.,,,,500,128,,,\n"                       # 6: out of range
        "fmt,Hi.,,,,10,128,xyz,,\n"                     # 7: unknown format
        "bool,Hi.,,,,10,128,,,maybe\n"                  # 8: not a boolean
        "both,Hi.,speech.wav,,,10,128,,,\n"             # 9: text and audio
        "../evil,Hi.,,,,10,128,,,\n"                    # 10: path traversal in the name
        "good,Again.,,,,10,128,,,\n"                    # 11: repeated name
        "alpha,Hi.,,,,10,128,mp4,transparent,\n"        # 12: transparency in mp4
        "\n"                                            # 13: a blank line is no row
        "audio,,speech.wav,,,10,128,,,\n"               # 14: good (audio beside the CSV)
        "german,Hallo zusammen.,,,de,10,128,webm,,\n"   # 15: good, a voice for the language
    ))
    errors = {int(e.split(":")[0].split()[1]): e for e in p.errors}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert all(e.startswith(f"line {n}: ") for n, e in errors.items())
    assert "empty text and no audio" in errors[3]
    assert "no-such-voice" in errors[4]
    assert "missing.wav" in errors[5] and "not found" in errors[5]
    assert "fps" in errors[6] and "500" in errors[6]
    assert "format" in errors[7] and "xyz" in errors[7]
    assert "blinks" in errors[8]
    assert "both" in errors[9]
    assert "safe file name" in errors[10]
    assert "line 2" in errors[11]
    assert "transparent" in errors[12]
    good = {r.line: r for r in p.good}
    assert sorted(good) == [2, 14, 15]
    assert good[2].output == (tmp_path / "out" / "good.mp4").resolve()
    assert good[14].request.voice.audio == str(tmp_path / "speech.wav")
    assert good[15].request.voice.voice.voice.startswith("espeak:de") or "de" in good[15].request.voice.voice.voice
    assert good[15].output.name == "german.webm"
    assert len({r.key for r in p.good}) == 3


def test_row_keys_follow_content_not_paths(tmp_path):
    a = plan(tmp_path, "one,Hello.,,,,10,128,,,\ntwo,Bye.,,,,10,128,,,\n")
    b = plan(tmp_path, "two,Bye.,,,,10,128,,,\none,Hello.,,,,10,128,,,\n")
    assert {r.name: r.key for r in a.good} == {r.name: r.key for r in b.good}  # order and lines do not matter
    c = plan(tmp_path, "one,Hello!,,,,10,128,,,\n")
    assert c.good[0].key != {r.name: r.key for r in a.good}["one"]  # the text does


def test_file_problems_stop_the_whole_batch(tmp_path):
    with pytest.raises(InvalidOption, match="line 1: unknown column"):
        plan(tmp_path, "x,Hi.,1\n", header="name,text,colour\n")
    with pytest.raises(InvalidOption, match="text or an audio column"):
        plan(tmp_path, "x,10\n", header="name,fps\n")
    with pytest.raises(InvalidOption, match="no rows"):
        plan(tmp_path, "")
    with pytest.raises(InvalidOption, match="more than 2 rows"):
        plan(tmp_path, "a,A.,,,,,,,,\nb,B.,,,,,,,,\nc,C.,,,,,,,,\n", max_rows=2)


def test_an_avatar_without_a_face_is_refused_once_up_front(tmp_path):
    import numpy as np
    from PIL import Image

    from pipeline.jobs.batch import plan_batch

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((240, 240, 3), 128, np.uint8)).save(blank)
    with pytest.raises(NoFaceFound):
        plan_batch(write_csv(tmp_path, "a,Hi.,,,,,,,,\n"), blank, tmp_path / "out")


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    from pipeline.jobs import JobSystem, current

    assert current() is None, "another JobSystem is running in this test process"
    jobs = JobSystem(tmp_path_factory.mktemp("batch-data"), workers=2, executor_id="test-batch")
    jobs.start()
    yield jobs
    jobs.stop()


def test_good_rows_render_bad_rows_are_summarised_and_a_rerun_skips_done_rows(system, tmp_path, astronaut_png):
    from pipeline.jobs.batch import SUMMARY_NAME, plan_batch, run_batch

    csv_path = write_csv(tmp_path, "one,Hello there.,,,,10,128,,,\nbad,,,,,10,128,,,\ntwo,Bye now.,,,,8,96,gif,,\n")
    out = tmp_path / "out"
    lines: list[str] = []
    first = plan_batch(csv_path, astronaut_png, out)
    assert run_batch(system, first, echo=lines.append) == 1  # one row is bad: not every row is done
    assert "line 3: empty text and no audio" in "\n".join(lines)
    with open(out / SUMMARY_NAME, newline="", encoding="utf-8") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    assert rows["one"]["state"] == "done" and rows["two"]["state"] == "done" and rows["bad"]["state"] == "invalid"
    assert Path(rows["one"]["output"]) == (out / "one.mp4").resolve() and (out / "one.mp4").is_file()
    assert (out / "two.gif").is_file() and rows["bad"]["reason"].startswith("line 3:")
    jobs = {r["name"]: system.get(r["job"]) for r in rows.values() if r["job"]}
    assert all(j.runs == 1 and j.batch == first.batch_id for j in jobs.values())

    (out / "one.mp4").unlink()  # done rows are known by content in the store, not by their files
    again = plan_batch(csv_path, astronaut_png, out)
    lines.clear()
    assert run_batch(system, again, echo=lines.append) == 1
    assert "2 done before (skipped)" in lines[1] and "0 new" in lines[1]
    with open(out / SUMMARY_NAME, newline="", encoding="utf-8") as fh:
        rerun = {r["name"]: r for r in csv.DictReader(fh)}
    assert rerun["one"]["job"] == rows["one"]["job"] and "skipped" in rerun["one"]["reason"]
    assert system.get(rows["one"]["job"]).runs == 1  # not rendered again

    fixed = write_csv(tmp_path, "one,Hello there.,,,,10,128,,,\ntwo,Bye now.,,,,8,96,gif,,\n")
    assert run_batch(system, plan_batch(fixed, astronaut_png, out), echo=lines.append) == 0  # all done: exit 0
