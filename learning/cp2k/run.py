"""Run CP2K on an input file and read the trajectory back.

CP2K runs as a subprocess in the input's directory, its output going to ``<input stem>.out`` and a
progress bar (stderr) following the ``.ener`` file.

``restart=True`` continues an interrupted or finished run from its ``<project>-1.restart`` file
through ``&EXT_RESTART`` (that input, with the new STEPS, is saved as ``<input stem>-continue.cp2k``).
The step count goes on and CP2K appends to the same ``-pos-1.xyz``, ``-vel-1.xyz``, ``-frc-1.xyz``
and ``-1.ener`` files without repeating the restart step.  Those files are first trimmed to the
restart step, so frames that a killed run wrote after its last restart file are not duplicated.  A run
killed while CP2K was writing its restart file leaves that file cut short: the continuation then starts
from the newest complete backup CP2K kept of it (``<project>-1.restart.bak-N``, written by
``BACKUP_COPIES`` in ``MOTION/PRINT/RESTART``; :mod:`learning.cp2k.inputs` keeps one), copied over
the cut file, with a warning; with none, it stops with an error and leaves every output as it is.  A
wavefunction restart file (``<project>-RESTART.wfn``) cut short the same way would stop CP2K when it
reads it: it is set aside (``.cut``), with a warning, and the SCF starts from CP2K's atomic guess.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

from tqdm import tqdm

from learning.cp2k.reader import Trajectory, read_trajectory

#: Executable names tried in order when none is given.
EXECUTABLES = ("cp2k.psmp", "cp2k", "cp2k.ssmp", "cp2k.popt")
#: CP2K's default for MOTION/MD/STEPS.
DEFAULT_STEPS = 3


class CP2KError(RuntimeError):
    """CP2K is missing, or it stopped with an error."""


def find_executable(exe: str | None = None) -> str:
    """The full path of ``exe``, or of the first of :data:`EXECUTABLES` on ``PATH``."""
    for name in [exe] if exe else EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    tried = exe or ", ".join(EXECUTABLES)
    raise CP2KError(
        f"CP2K executable not found (tried {tried}); install it with `apt-get install cp2k` "
        "(Debian/Ubuntu) or give its path"
    )


def run_cp2k(
    path: str | Path,
    *,
    restart: bool = False,
    steps: int | None = None,
    exe: str | None = None,
    threads: int = 2,
    progress: bool = True,
) -> Trajectory:
    """Run the CP2K input ``path`` (an ``.inp`` file, or a directory holding one) and read it back.

    Args:
        path: the input file or its directory (the run directory).
        restart: continue from ``<project>-1.restart`` in the run directory.
        steps: MD steps to add in a continuation (default: those left to reach the input's STEPS).
        exe: the CP2K executable (default: the first of :data:`EXECUTABLES` on ``PATH``).
        threads: ``OMP_NUM_THREADS`` for CP2K.
        progress: show a tqdm progress bar on stderr.

    Returns:
        the whole trajectory so far, all sittings together.

    Raises:
        CP2KError: CP2K is missing, aborted (the message quotes its ABORT text) or failed.
        ValueError: a fresh run would mix with an earlier run's output, or nothing to continue.
    """
    input_path = _input_file(path)
    project, start, n_steps = _plan(input_path, restart, steps)
    executable = find_executable(exe)
    run_input = _prepare_continuation(input_path, project, start, n_steps) if restart else input_path
    log_path = input_path.with_suffix(".out")
    with open(log_path, "ab" if restart else "wb") as log:
        offset = log.tell()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        process = subprocess.Popen(
            [executable, "-i", run_input.name], cwd=input_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        _follow(process, input_path.parent / f"{project}-1.ener", start, n_steps, progress)
    if process.returncode != 0:
        with open(log_path, "rb") as log:
            log.seek(offset)
            output = log.read().decode(errors="replace")
        message = abort_message(output) or "\n".join(output.strip().splitlines()[-15:])
        raise CP2KError(f"CP2K stopped (exit code {process.returncode}) in {input_path.parent}: {message}")
    return read_trajectory(input_path)


#: The files CP2K appends to, after the project name; the energies last.
OUTPUT_SUFFIXES = ("-pos-1.xyz", "-vel-1.xyz", "-frc-1.xyz", "-1.ener")


def _outputs(run_dir: Path, project: str) -> list[Path]:
    return [run_dir / f"{project}{suffix}" for suffix in OUTPUT_SUFFIXES]


def _plan(input_path: Path, restart: bool, steps: int | None) -> tuple[str, int, int]:
    """``(project, first step, steps to run)``, checking the run folder."""
    text = input_path.read_text()
    project = _keyword(text, "GLOBAL", ("PROJECT", "PROJECT_NAME")) or "PROJECT"
    target = int(_keyword(text, "MOTION/MD", ("STEPS",)) or DEFAULT_STEPS)
    if restart:
        return (project, *_continue_steps(_restart_file(input_path.parent, project), target, steps))
    if steps is not None:
        raise ValueError("steps applies to a continuation (restart=True); set STEPS in the input")
    if any(output.exists() for output in _outputs(input_path.parent, project)):
        raise ValueError(
            f"{input_path.parent} already holds output of project {project!r}: continue it with "
            "restart=True (--restart) or remove those files"
        )
    return project, 0, target


def _prepare_continuation(input_path: Path, project: str, start: int, n_steps: int) -> Path:
    """Trim the outputs to step ``start``, set a cut wavefunction file aside and write the continuation input;
    return its path."""
    for output in _outputs(input_path.parent, project):
        trim_output(output, start)
    wavefunction = input_path.parent / f"{project}-RESTART.wfn"
    if wavefunction.exists() and not _complete_records(wavefunction):
        cut = wavefunction.replace(wavefunction.with_name(wavefunction.name + ".cut"))
        warnings.warn(f"{wavefunction} is cut short (CP2K was stopped while writing it): set aside as {cut.name}; "
                      "the SCF starts from CP2K's atomic guess", stacklevel=3)
    run_input = input_path.with_name(f"{input_path.stem}-continue.cp2k")  # not *.inp: one input per folder
    run_input.write_text(_continuation(input_path.read_text(), f"{project}-1.restart", n_steps))
    return run_input


def _input_file(path: str | Path) -> Path:
    path = Path(path).resolve()
    if path.is_dir():
        inputs = sorted(path.glob("*.inp"))
        if len(inputs) != 1:
            raise ValueError(f"expected one CP2K .inp file in {path}, found {[p.name for p in inputs]}")
        return inputs[0]
    if not path.is_file():
        raise ValueError(f"no CP2K input at {path}")
    return path


def _follow(process: subprocess.Popen, ener: Path, start: int, n_steps: int, progress: bool) -> None:
    """Wait for ``process``, advancing a progress bar to the last step in ``ener``."""
    with tqdm(total=n_steps, unit="step", desc="CP2K MD", disable=not progress) as bar:
        try:
            while True:
                try:
                    process.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
                bar.update(max(0, min(_last_step(ener) - start, n_steps) - bar.n))
                if process.returncode is not None:
                    return
        except BaseException:  # Ctrl-C: stop CP2K too; its restart file allows continuing
            process.terminate()
            process.wait()
            raise


def _last_step(ener: Path) -> int:
    """The last step number in a CP2K ``.ener`` file (-1 if none yet)."""
    try:
        with open(ener, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return -1
    for line in reversed(lines):
        words = line.split()
        if words and words[0].isdigit() and len(words) >= 7:
            return int(words[0])
    return -1


def abort_message(output: str) -> str | None:
    """The text of CP2K's ``[ABORT]`` box in ``output`` (with its source location), else a Fortran runtime
    error (``Fortran runtime error: ...`` with the ``At line N of file F`` before it, which the unbuffered
    stderr puts anywhere in the log, not at its end), or ``None``."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "[ABORT]" in line), None)
    if start is None:
        runtime = next((i for i, line in enumerate(lines) if line.startswith("Fortran runtime error:")), None)
        if runtime is None:
            return None
        where = lines[runtime - 1].strip() if runtime > 0 and lines[runtime - 1].startswith("At line ") else ""
        return f"{lines[runtime].strip()} ({where})" if where else lines[runtime].strip()
    words = []
    for line in lines[start:]:
        if not line.lstrip().startswith("*") or line.strip().strip("*") == "":
            break
        words += line.strip()[1:].rstrip("*")[10:].split()
    *message, location = words or [""]
    return f"{' '.join(message)} (at {location})" if re.search(r"\.F:\d+$", location) else " ".join(words)


def _keyword(text: str, section: str, names: tuple[str, ...]) -> str | None:
    """The value of the first keyword among ``names`` directly in ``section`` (e.g. ``MOTION/MD``)."""
    for _, path, key, value in _keyword_lines(text.splitlines()):
        if path == section and key in names:
            return value
    return None


def _keyword_lines(lines: list[str], stack: list[str] | None = None):
    """Yield ``(line index, section path, KEY, value)`` for every keyword line of a CP2K input; ``stack``
    (a list, if given) ends holding the sections left open when the lines run out."""
    stack = [] if stack is None else stack
    for index, line in enumerate(lines):
        words = re.split(r"[#!]", line, maxsplit=1)[0].split(None, 1)
        if not words:
            continue
        head = words[0].upper()
        if head.startswith("&END"):
            if stack:
                stack.pop()
        elif head.startswith("&"):
            stack.append(head[1:])
        else:
            yield index, "/".join(stack), head, words[1].strip() if len(words) > 1 else ""


def _complete_restart(path: Path) -> bool:
    """Whether the CP2K restart file ``path`` was written to its end: every section closed, with
    ``MOTION/MD/STEP_START_VAL`` and ``FORCE_EVAL`` in it (a run killed while writing it leaves it cut short)."""
    stack: list[str] = []
    found = {(section, key) for _, section, key, _ in _keyword_lines(path.read_text(errors="replace").splitlines(), stack)}
    return not stack and ("MOTION/MD", "STEP_START_VAL") in found and any(s.startswith("FORCE_EVAL") for s, _ in found)


def _restart_file(run_dir: Path, project: str) -> Path:
    """``<project>-1.restart``, complete: where a killed run left it cut short, its newest complete backup
    (``.bak-1``, ``.bak-2``, ...) is copied over it first, with a warning."""
    restart = run_dir / f"{project}-1.restart"
    if not restart.exists():
        raise ValueError(f"cannot continue: no restart file {restart}")
    if _complete_restart(restart):
        return restart
    backups = sorted(run_dir.glob(f"{restart.name}.bak-*"), key=lambda p: p.name.rsplit("-", 1)[1].zfill(9))
    backup = next((b for b in backups if _complete_restart(b)), None)
    if backup is None:
        raise ValueError(f"cannot continue: {restart} is cut short (CP2K was stopped while writing it) and there is "
                         "no complete backup of it (BACKUP_COPIES in MOTION/PRINT/RESTART keeps them); the run's "
                         "outputs are left as they are")
    warnings.warn(f"{restart} is cut short (CP2K was stopped while writing it): continuing from its backup "
                  f"{backup.name}, an earlier step", stacklevel=4)
    shutil.copyfile(backup, restart)
    return restart


def _complete_records(path: Path) -> bool:
    """Whether ``path`` is whole as a Fortran sequential unformatted file (CP2K's ``.wfn``): records each framed
    by the same 4-byte length before and after, the last ending at the end of the file."""
    data = path.read_bytes()
    position = 0
    while position + 4 <= len(data):
        (length,) = struct.unpack_from("<i", data, position)
        end = position + 4 + length
        if length < 0 or end + 4 > len(data) or struct.unpack_from("<i", data, end)[0] != length:
            return False
        position = end + 4
    return position == len(data) > 0


def _continue_steps(restart_file: Path, target: int, steps: int | None) -> tuple[int, int]:
    """``(restart step, steps to run)``: ``steps``, or those left to reach step ``target``."""
    start = int(_keyword(restart_file.read_text(), "MOTION/MD", ("STEP_START_VAL",)) or 0)
    n_steps = target - start if steps is None else steps
    if n_steps <= 0:
        raise ValueError(
            f"the run is at step {start}, the input asks for {target}: give steps (--steps N) to extend it"
        )
    return start, n_steps


def _continuation(text: str, restart_name: str, n_steps: int) -> str:
    """The input ``text`` set to run ``n_steps`` more steps from the restart file ``restart_name``."""
    lines = text.splitlines()
    found = [index for index, path, key, _ in _keyword_lines(lines) if (path, key) == ("MOTION/MD", "STEPS")]
    if found:
        lines[found[0]] = f"    STEPS {n_steps}"
    else:
        md_line = next(i for i, line in enumerate(lines) if re.match(r"\s*&MD\b", line, re.IGNORECASE))
        lines.insert(md_line + 1, f"    STEPS {n_steps}")
    lines += ["&EXT_RESTART", f"  RESTART_FILE_NAME {restart_name}", "&END EXT_RESTART"]
    return "\n".join(lines) + "\n"


def trim_output(path: Path, last_step: int) -> None:
    """Cut a CP2K ``.xyz`` or ``.ener`` output after ``last_step`` (and any partial last record)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # a record cut off mid-line
    kept: list[str] = []
    if path.suffix == ".ener":
        for line in lines:
            words = line.split()
            if line.startswith("#") or (len(words) >= 7 and int(words[0]) <= last_step):
                kept.append(line)
    else:
        i = 0
        while i < len(lines) and lines[i].strip().isdigit():
            end = i + 2 + int(lines[i])
            step = re.search(r"i\s*=\s*(\d+)", lines[i + 1]) if i + 1 < len(lines) else None
            if end > len(lines) or step is None or int(step.group(1)) > last_step:
                break
            kept += lines[i:end]
            i = end
    path.write_text("".join(kept))
