"""`job file stream` and `job create --stream/--wait` on real running jobs: a local folder, Azurite
Blob and the Azure Files emulator; waiting, the last bytes, --tail/--offset, Ctrl-C and resume,
exit codes, and what goes wrong (a file that never comes, a deleted job, storage going away)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.files.conftest import file_args, finish, python_job, stream_process
from tests.jobs.conftest import custom

# Lines at a steady pace, with characters of 2, 3 and 4 bytes in UTF-8.
TICKS = python_job("import time\nfor i in range(12):\n    print(f'tick {i} é€😀', flush=True)\n    time.sleep(0.15)")
TICKS_TEXT = "".join(f"tick {i} é€😀\n" for i in range(12))


def stream(lab, job: str, *more: str):
    return lab.batchai("job", "file", "stream", *file_args(job, *more))


def test_a_running_jobs_stdout_arrives_whole_after_one_waiting_message(lab, tmp_path):
    out = tmp_path / "out"
    # The job preparation holds stdout.txt back for a second, so the stream has to wait for it.
    created = lab.submit("j", custom(TICKS, out, jobPreparation={"commandLine": "sleep 1"}))
    assert created.code == 0, created.err
    result = stream(lab, "j", "-f", "stdout.txt")
    assert result.code == 0, result.err
    assert result.out == TICKS_TEXT
    assert result.err == 'WARNING: The file "stdout.txt" not found. Waiting for the job to generate it.\n'
    assert (lab.stdouterr("j", out) / "stdout.txt").read_text() == TICKS_TEXT
    assert lab.show("j")["executionState"] == "succeeded"


def test_the_last_bytes_always_arrive(lab, tmp_path):
    out = tmp_path / "out"
    # Written in the job's last instant, without a newline: az's poll could miss it.
    lab.submit("j", custom("echo first; sleep 0.5; printf 'last words'", out))
    result = stream(lab, "j", "-f", "stdout.txt")
    assert result.out == "first\nlast words"


def test_zero_bytes_are_data_too(lab, tmp_path):
    out = tmp_path / "out"
    # A run of zeros at the end is held back while the job runs (on Azure Files it may be bytes not
    # written yet), never dropped.
    lab.submit("j", custom(r"printf 'a\0\0b\0'; sleep 1; printf 'c\0\0'", out))
    result = stream(lab, "j", "-f", "stdout.txt")
    assert result.out == "a\0\0b\0c\0\0"


def test_a_file_that_never_appears_on_a_failing_job(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("bad", custom("sleep 0.5; exit 3", out))
    result = stream(lab, "bad", "-f", "model.log")
    assert result.code == 3  # not found: the file never appeared
    assert result.out == ""
    assert result.err == (
        'WARNING: The file "model.log" not found. Waiting for the job to generate it.\n'
        'ERROR: The file "model.log" not found for the completed job. List its files with `batchai job file '
        "list`.\n"
    )
    waited = stream(lab, "bad", "-f", "model.log", "--wait")
    assert waited.code == 3
    assert waited.err.startswith('ERROR: The file "model.log" not found for the completed job.')


def test_wait_exits_with_the_jobs_exit_code(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("j", custom("echo partial; exit 7", out))
    result = stream(lab, "j", "-f", "stdout.txt", "--wait")
    assert result.code == 7
    assert result.out == "partial\n"
    assert "Job failed with exit code 7" in result.err
    lab.submit("ok", custom("echo fine", out))
    assert stream(lab, "ok", "-f", "stdout.txt", "--wait").code == 0


def test_tail_and_offset(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("j", custom("printf 'one\\ntwo\\nthree\\nfour\\n'; printf 'fünf'", out))
    assert lab.wait("j").code == 0
    assert stream(lab, "j", "-f", "stdout.txt", "--tail", "2").out == "four\nfünf"
    assert stream(lab, "j", "-f", "stdout.txt", "--tail", "0").out == ""
    assert stream(lab, "j", "-f", "stdout.txt", "--tail", "99").out == "one\ntwo\nthree\nfour\nfünf"
    assert stream(lab, "j", "-f", "stdout.txt", "--offset", "8").out == "three\nfour\nfünf"
    both = stream(lab, "j", "-f", "stdout.txt", "--offset", "1", "--tail", "1")
    assert both.code == 2 and both.err == "ERROR: --offset and --tail cannot be used together.\n"
    climbing = stream(lab, "j", "-f", "../stdout.txt")
    assert climbing.code == 2 and "'..' is not allowed in --file-name" in climbing.err
    assert stream(lab, "j", "-f", "stdout.txt", "-d", "NOPE").code == 3


def test_ctrl_c_prints_the_offset_and_resuming_gives_the_rest_once(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit(
        "j",
        custom(
            python_job(
                "import time\nfor i in range(60):\n    print(f'line {i:03d} ü', flush=True)\n    time.sleep(0.05)"
            ),
            out,
        ),
    )
    process = stream_process("j", "-f", "stdout.txt")
    first = process.stdout.read1(4096)
    assert first.startswith(b"line 000")
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    rest, err = finish(process)
    assert process.returncode == 0, err
    shown = first + rest
    message = err.decode().strip().splitlines()[-1]
    offset = int(message.split("offset ")[1].split(";")[0])
    assert message == f"Stopped at byte offset {offset}; resume with --offset {offset}"
    assert offset == len(shown)
    assert lab.wait("j").code == 0
    resumed = stream(lab, "j", "-f", "stdout.txt", "--offset", str(offset))
    full = (lab.stdouterr("j", out) / "stdout.txt").read_bytes()
    assert shown + resumed.out.encode() == full
    assert full == "".join(f"line {i:03d} ü\n" for i in range(60)).encode()


def test_a_job_deleted_while_streaming(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("j", custom("echo started; sleep 30", out))
    process = stream_process("j", "-f", "stdout.txt")
    assert process.stdout.readline() == b"started\n"
    assert lab.batchai("job", "delete", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "-y").code == 0
    rest, err = finish(process)
    assert process.returncode == 3
    assert rest == b""
    assert err.decode().endswith(
        'ERROR: The job "j" was deleted while "stdout.txt" was streamed (stopped at byte offset 8).\n'
    )


def test_job_create_stream_and_wait_is_one_ci_step(lab, tmp_path):
    out = tmp_path / "out"
    created = lab.submit("ci", custom("echo training; echo done", out), "--stream", "--wait")
    assert created.code == 0, created.err
    assert created.out == "training\ndone\n"
    failed = lab.submit("ci2", custom("echo training; exit 5", out), "--stream", "--wait")
    assert failed.code == 5
    assert failed.out == "training\n"
    streamed_only = lab.submit("ci3", custom("echo x; exit 5", out), "--stream")
    assert streamed_only.code == 0 and streamed_only.out == "x\n"


def test_job_create_wait_prints_the_ended_job(lab, tmp_path):
    out = tmp_path / "out"
    created = lab.submit("w", custom("exit 4", out), "--wait", "--query", "[executionState, executionInfo.exitCode]")
    assert created.code == 4
    assert created.json() == ["failed", 4]
    assert "WARNING: Job failed with exit code 4" in created.err


def test_decoding_is_whole_across_any_chunk_border(lab, tmp_path):
    from batchai_cli.ids import parse
    from batchai_cli.services import open_session
    from batchai_cli.services.files import FileStream

    out = tmp_path / "out"
    lab.submit("j", custom(TICKS, out))
    assert lab.wait("j").code == 0
    rid = parse(lab.show("j")["id"])
    session = open_session()
    try:
        for size in (1, 2, 3, 5, 7):
            events = list(FileStream(session, rid, "stdout.txt", chunk_size=size))
            texts = [value for kind, value in events if kind == "text"]
            assert "".join(t.text for t in texts) == TICKS_TEXT
            # Every offset is at a character border, so resuming from it never splits one.
            data = TICKS_TEXT.encode()
            assert all(data[: t.offset].decode() for t in texts)
            assert texts[-1].offset == len(data)
            assert events[-1][0] == "end"
    finally:
        session.close()


@pytest.mark.integration
def test_stream_from_azurite_blob_while_the_job_runs(lab, blob_job):
    lab.submit("j", blob_job(TICKS))
    result = stream(lab, "j", "-f", "stdout.txt")
    assert result.code == 0, result.err
    assert result.out == TICKS_TEXT


@pytest.mark.integration
def test_stream_from_the_azure_files_emulator_while_the_job_runs(lab, share_job):
    lab.submit("j", share_job(TICKS))
    result = stream(lab, "j", "-f", "stdout.txt", "--wait")
    assert result.code == 0, result.err
    assert result.out == TICKS_TEXT


@pytest.mark.integration
def test_storage_going_away_mid_stream_names_the_offset_to_resume_from(lab, blob_job):
    from tests.storage.tcpproxy import TcpProxy

    azurite = blob_job.azurite
    lab.submit(
        "j",
        blob_job(
            python_job("import time\nfor i in range(40):\n    print(f'step {i:02d}', flush=True)\n    time.sleep(0.1)")
        ),
    )
    with TcpProxy(azurite.port) as proxy:
        through_proxy = azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/")
        process = stream_process(
            "j",
            "-f",
            "stdout.txt",
            env={
                "AZURE_STORAGE_CONNECTION_STRING": through_proxy,
                "BATCHAI_STORAGE_RETRIES": "0",
                "BATCHAI_STREAM_RETRY_SECONDS": "1",
            },
        )
        assert process.stdout.readline() == b"step 00\n"
        proxy.stop()
        rest, err = finish(process)
    shown = b"step 00\n" + rest
    assert process.returncode == 1
    text = err.decode()
    assert "WARNING: Storage is not answering" in text
    offset = len(shown)
    assert f"Stopped at byte offset {offset}. Resume with --offset {offset} once storage answers again." in text
    assert lab.wait("j").code == 0
    resumed = stream(lab, "j", "-f", "stdout.txt", "--offset", str(offset))
    assert shown.decode() + resumed.out == "".join(f"step {i:02d}\n" for i in range(40))


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        "local",
        pytest.param("blob", marks=pytest.mark.integration),
        pytest.param("share", marks=pytest.mark.integration),
    ],
)
def test_ten_megabytes_streamed_while_written_equal_the_file(lab, tmp_path, backend, request):
    # Written over about two seconds, in flushes that split lines (and characters) anywhere.
    script = (
        "import sys, time\nline = ('é€😀 %07d ' * 8 + '\\n')\nfor i in range(80000):\n"
        "    sys.stdout.write(line % ((i,) * 8))\n"
        "    if i % 2000 == 0: sys.stdout.flush(); time.sleep(0.05)"
    )
    if backend == "local":
        properties = custom(python_job(script), tmp_path / "out")
    else:
        properties = request.getfixturevalue(f"{backend}_job")(python_job(script))
    lab.submit("big", properties)
    process = stream_process("big", "-f", "stdout.txt")
    shown, err = finish(process, timeout=300)
    assert process.returncode == 0, err
    expected = "".join(("é€😀 %07d " * 8 + "\n") % ((i,) * 8) for i in range(80000)).encode()
    assert len(expected) > 10_000_000
    assert shown == expected


def test_a_reader_that_leaves_early_is_not_an_error(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit(
        "j",
        custom(
            python_job("import time\nfor i in range(40):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05)"),
            out,
        ),
    )
    process = stream_process("j", "-f", "stdout.txt")  # as in `batchai job file stream ... | head -1`
    assert process.stdout.readline() == b"line 0\n"
    process.stdout.close()
    assert process.wait(timeout=60) == 0
    assert b"Error" not in process.stderr.read()


def test_a_file_in_an_output_directory(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit(
        "j",
        custom(
            "mkdir -p $AZ_BATCHAI_OUTPUT_OUT/logs; for i in 1 2 3; do echo epoch $i >> "
            "$AZ_BATCHAI_OUTPUT_OUT/logs/train.log; sleep 0.3; done",
            out,
            outputDirectories=[{"id": "OUT", "pathPrefix": str(out)}],
        ),
    )
    result = stream(lab, "j", "-d", "OUT", "-p", "logs", "-f", "train.log")
    assert result.code == 0, result.err
    assert result.out == "epoch 1\nepoch 2\nepoch 3\n"
    assert stream(lab, "j", "-d", "OUT", "-f", "logs/train.log", "--tail", "1").out == "epoch 3\n"
    directory = stream(lab, "j", "-d", "OUT", "-f", "logs")
    assert directory.code == 2 and directory.err.startswith('ERROR: "logs" is a directory.')
