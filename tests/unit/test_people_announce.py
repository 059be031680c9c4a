"""The terminal's line when a run waits for people: what it says, and once per wave."""

from __future__ import annotations

from pathlib import Path

from callerid.people.announce import FILE_NAME, Announcer, Waiting, read, write


def test_a_wave_line_says_the_counts_the_ui_link_and_the_page() -> None:
    wave = Waiting(
        wave=1,
        numbers=3,
        owners=2,
        emailed=2,
        channels={"call": 2, "sms": 1},
        form="http://ui/runs/flow-run/abc",
        page="http://127.0.0.1:8780",
    )
    assert wave.line() == (
        "Waiting for people (wave 1): 3 numbers (2 voice call, 1 SMS) need a code typed; "
        "2 of 2 owners emailed; form: http://ui/runs/flow-run/abc; "
        "their links open the code page at http://127.0.0.1:8780; "
        "or `callerid otp submit NUMBER CODE`"
    )


def test_without_smtp_the_line_says_why_nobody_was_emailed() -> None:
    wave = Waiting(wave=2, numbers=1, owners=1, emailed=0, failed=1, why_not="no SMTP server")
    line = wave.line()
    assert line.startswith("Waiting for people (wave 2): 1 number needs a code typed; 0 of 1 ")
    assert "not emailed: no SMTP server" in line and "code page" not in line
    assert line.endswith("; `callerid otp submit NUMBER CODE`")  # the one way left


def test_an_ask_person_form_and_a_reminder() -> None:
    form = Waiting(wave=0, numbers=4, form="http://ui/runs/flow-run/child")
    assert form.line() == (
        "Waiting for a person: 4 numbers need a code typed; form: http://ui/runs/flow-run/child; "
        "or `callerid otp submit NUMBER CODE`"
    )
    assert Waiting(wave=1, numbers=2, owners=1, emailed=1, reminder=True).line() == (
        "Reminded 1 of 1 owner of 2 numbers"
    )


def test_each_line_is_said_once_and_a_half_written_line_waits(tmp_path: Path) -> None:
    said: list[str] = []
    announcer = Announcer(tmp_path, said.append)
    announcer.poll()
    assert said == []  # no file yet
    write(tmp_path, Waiting(wave=1, numbers=1, owners=1, emailed=1))
    with (tmp_path / FILE_NAME).open("a", encoding="utf-8") as fh:
        fh.write('{"wave": 2, "numb')  # the run is writing the next one
    announcer.poll()
    announcer.poll()
    assert len(said) == 1 and said[0].startswith("Waiting for people (wave 1)")
    with (tmp_path / FILE_NAME).open("a", encoding="utf-8") as fh:
        fh.write('ers": 5, "owners": 2, "emailed": 2}\n')
    announcer.poll()
    announcer.poll()
    assert [line.split(":")[0] for line in said] == [
        "Waiting for people (wave 1)",
        "Waiting for people (wave 2)",
    ]
    assert [w.numbers for w in read(tmp_path)] == [1, 5]
