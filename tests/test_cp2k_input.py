"""CP2K input writer, runner helpers and ``mld cp2k input``: everything that needs no CP2K."""

from types import SimpleNamespace

import numpy as np
import pytest

from experiments.cli import main
from learning.cp2k.inputs import (
    MDSettings,
    Section,
    apply_override,
    frame_input,
    md_input,
    water_input,
)
from learning.cp2k.units import VELOCITY_AU_A_PER_FS
from learning.cp2k.run import (
    CP2KError,
    _complete_records,
    _continuation,
    _keyword,
    _plan,
    abort_message,
    find_executable,
    run_cp2k,
    trim_output,
)

SYMBOLS = ["O", "H", "H"]
POSITIONS = np.array([[1.0, 1.0, 1.0], [1.757, 1.586, 1.0], [0.243, 1.586, 1.0]])


def keywords(root: Section, path: str) -> dict:
    node = root
    for name in path.split("/"):
        node = node.find(name)
        assert node is not None, f"no section {path}"
    return node.keywords


def test_sections_render_as_cp2k_text():
    root = Section(None)
    scf = root.add("force_eval", METHOD="QS").add("SCF", EPS_SCF=1e-5, MAX_SCF=30)
    scf.add("OT", "ON", minimizer="DIIS")
    root.add("COORD").rows = ["O 0.0 0.0 0.0"]
    assert root.render() == (
        "&FORCE_EVAL\n  METHOD QS\n  &SCF\n    EPS_SCF 1e-05\n    MAX_SCF 30\n"
        "    &OT ON\n      MINIMIZER DIIS\n    &END OT\n  &END SCF\n&END FORCE_EVAL\n"
        "&COORD\n  O 0.0 0.0 0.0\n&END COORD\n"
    )


def test_default_input_has_the_papers_settings():
    root = md_input(SYMBOLS, POSITIONS, 9.8528)
    assert keywords(root, "GLOBAL") == {"PROJECT": "mld", "RUN_TYPE": "MD", "PRINT_LEVEL": "LOW"}
    md = keywords(root, "MOTION/MD")
    assert (md["ENSEMBLE"], md["TIMESTEP"], md["TEMPERATURE"], md["STEPS"]) == ("NVE", 0.5, 300.0, 1000)
    assert keywords(root, "FORCE_EVAL/DFT/MGRID") == {"CUTOFF": 280.0, "REL_CUTOFF": 30.0}
    assert keywords(root, "FORCE_EVAL/DFT/SCF/OT")["MINIMIZER"] == "DIIS"
    assert root.section("FORCE_EVAL/DFT/XC/XC_FUNCTIONAL").parameter == "PADE"
    kind = root.section("FORCE_EVAL/SUBSYS/KIND O").keywords
    assert kind == {"ELEMENT": "O", "BASIS_SET": "TZV2P-GTH", "POTENTIAL": "GTH-PADE"}
    for name in ("TRAJECTORY", "VELOCITIES", "FORCES", "RESTART"):
        assert keywords(root, f"MOTION/PRINT/{name}/EACH") == {"MD": 1}
    assert keywords(root, "MOTION/MD/PRINT/ENERGY/EACH") == {"MD": 1}
    text = root.render()
    assert "ABC 9.8528 9.8528 9.8528" in text and "&VELOCITY" not in text
    assert "O       1.00000000      1.00000000      1.00000000" in text


def test_velocities_are_written_in_bohr_per_atomic_time_unit():
    velocities = np.array([[0.01, -0.02, 0.003], [0.05, 0.0, -0.04], [-0.03, 0.02, 0.01]])
    rows = md_input(SYMBOLS, POSITIONS, 5.0, velocities).section("FORCE_EVAL/SUBSYS/VELOCITY").rows
    written = np.array([row.split() for row in rows], dtype=float)
    np.testing.assert_allclose(written * VELOCITY_AU_A_PER_FS, velocities, rtol=1e-9)


@pytest.mark.parametrize(
    "preset, basis, cutoff",
    [
        ("dzvp", "DZVP-MOLOPT-SR-GTH", 280.0),
        ("szv", "SZV-MOLOPT-SR-GTH", 200.0),
        ("paper", "TZV2P-GTH", 280.0),
    ],
)
def test_dft_presets(preset, basis, cutoff):
    root = md_input(SYMBOLS, POSITIONS, 5.0, settings=MDSettings(preset=preset))
    assert root.section("FORCE_EVAL/SUBSYS/KIND H").keywords["BASIS_SET"] == basis
    assert keywords(root, "FORCE_EVAL/DFT/MGRID")["CUTOFF"] == cutoff


def test_xtb_preset_and_setting_overrides():
    settings = MDSettings(preset="xtb", project="w", steps=7, timestep_fs=0.25, ensemble="nvt", seed=3)
    root = md_input(SYMBOLS, POSITIONS, [5.0, 6.0, 7.0], settings=settings)
    assert keywords(root, "FORCE_EVAL/DFT/QS")["METHOD"] == "XTB"
    assert keywords(root, "FORCE_EVAL/DFT/QS/XTB")["DO_EWALD"] is True
    assert root.section("FORCE_EVAL/DFT").find("MGRID") is None
    assert "BASIS_SET" not in root.section("FORCE_EVAL/SUBSYS/KIND H").keywords
    assert keywords(root, "GLOBAL")["SEED"] == 3 and keywords(root, "GLOBAL")["PROJECT"] == "w"
    assert keywords(root, "MOTION/MD")["ENSEMBLE"] == "NVT"
    assert keywords(root, "MOTION/MD/THERMOSTAT/NOSE") == {"LENGTH": 3, "TIMECON": 100.0}
    assert "ABC 5.0 6.0 7.0" in root.render()
    with pytest.raises(ValueError, match="xtb preset has no basis"):
        md_input(SYMBOLS, POSITIONS, 5.0, settings=MDSettings(preset="xtb", cutoff_Ry=300))
    custom = MDSettings(preset="szv", basis="DZVP-MOLOPT-GTH", cutoff_Ry=350.0)
    root = md_input(SYMBOLS, POSITIONS, 5.0, settings=custom)
    assert root.section("FORCE_EVAL/SUBSYS/KIND O").keywords["BASIS_SET"] == "DZVP-MOLOPT-GTH"
    assert keywords(root, "FORCE_EVAL/DFT/MGRID")["CUTOFF"] == 350.0


def test_apply_override_sets_keywords_parameters_and_new_sections():
    root = md_input(SYMBOLS, POSITIONS, 5.0)
    apply_override(root, "force_eval/dft/scf/eps_scf=1e-6")
    apply_override(root, "FORCE_EVAL/DFT/SCF/OT=OFF")
    apply_override(root, "MOTION/MD/THERMOSTAT/NOSE/TIMECON=100")
    apply_override(root, "FORCE_EVAL/SUBSYS/KIND H/MASS=2.014")
    assert keywords(root, "FORCE_EVAL/DFT/SCF")["EPS_SCF"] == "1e-6"
    assert root.section("FORCE_EVAL/DFT/SCF/OT").parameter == "OFF"
    assert keywords(root, "MOTION/MD/THERMOSTAT/NOSE") == {"TIMECON": "100"}
    assert root.section("FORCE_EVAL/SUBSYS/KIND H").keywords["MASS"] == "2.014"
    for bad in ("MOTION/MD/STEPS", "STEPS=3", "MOTION/MD/STEPS="):
        with pytest.raises(ValueError, match="override"):
            apply_override(root, bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"positions": POSITIONS[:2]}, "positions must be finite with shape"),
        ({"box": -1.0}, "box must be positive"),
        ({"velocities": np.full((3, 3), np.nan)}, "velocities must be finite"),
        ({"settings": MDSettings(preset="pm6")}, "unknown CP2K preset"),
        ({"settings": MDSettings(steps=-1)}, "steps must be >= 0"),
    ],
)
def test_md_input_rejects_bad_input(kwargs, message):
    arguments = {"symbols": SYMBOLS, "positions": POSITIONS, "box": 5.0} | kwargs
    with pytest.raises(ValueError, match=message):
        md_input(**arguments)


def test_water_input_and_frame_input():
    root = water_input(2, MDSettings(preset="xtb", seed=1))
    assert len(root.section("FORCE_EVAL/SUBSYS/COORD").rows) == 6
    assert len(root.section("FORCE_EVAL/SUBSYS/VELOCITY").rows) == 6
    trajectory = SimpleNamespace(
        symbols=SYMBOLS, box=5.0, positions=np.stack([POSITIONS, POSITIONS + 0.5]),
        velocities=np.zeros((2, 3, 3)),
    )
    rows = frame_input(trajectory, 1).section("FORCE_EVAL/SUBSYS/COORD").rows
    assert rows[0].split() == ["O", "1.50000000", "1.50000000", "1.50000000"]
    with pytest.raises(ValueError, match="outside the trajectory's 2 frames"):
        frame_input(trajectory, 2)


ABORT_OUTPUT = """
 *******************************************************************************
 *   ___                                                                       *
 *  /   \\                                                                      *
 * [ABORT]                                                                     *
 *  \\___/     The requested basis set <NO-SUCH-BASIS> for element <O> was not  *
 *    |                 found in the basis set files <BASIS_MOLOPT>            *
 *  O/|                                                                        *
 * /| |                                                                        *
 * / \\                                          aobasis/basis_set_types.F:1509 *
 *******************************************************************************
"""


def test_abort_message_quotes_cp2ks_box():
    assert abort_message(ABORT_OUTPUT) == (
        "The requested basis set <NO-SUCH-BASIS> for element <O> was not found in the basis set files "
        "<BASIS_MOLOPT> (at aobasis/basis_set_types.F:1509)"
    )
    assert abort_message("all fine") is None
    runtime = ("  step_size  5.00E-01\nAt line 837 of file src/qs_mo_io.F (unit = 1, file = 'w-RESTART.wfn')\n"
               "Fortran runtime error: Unformatted file structure has been corrupted\n\nError termination.\n"
               " Number of electrons:  8\n")  # stderr lands before stdout's last lines
    assert abort_message(runtime) == ("Fortran runtime error: Unformatted file structure has been corrupted (At line "
                                      "837 of file src/qs_mo_io.F (unit = 1, file = 'w-RESTART.wfn'))")


def test_missing_executable_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CP2KError, match="apt-get install cp2k"):
        find_executable()
    with pytest.raises(CP2KError, match="tried /no/such/cp2k.*apt-get install cp2k"):
        find_executable("/no/such/cp2k")


def test_run_refuses_to_mix_a_fresh_run_with_old_output(tmp_path):
    settings = MDSettings(project="w")
    (tmp_path / "w.inp").write_text(md_input(SYMBOLS, POSITIONS, 5.0, settings=settings).render())
    (tmp_path / "w-1.ener").write_text("")
    with pytest.raises(ValueError, match="already holds output of project 'w'"):
        run_cp2k(tmp_path)
    with pytest.raises(ValueError, match="no restart file"):
        run_cp2k(tmp_path, restart=True)


def restart_text(step: int) -> str:
    """A complete CP2K restart file, as far as the continuation reads it."""
    return (f"&GLOBAL\n PROJECT_NAME w\n&END GLOBAL\n&MOTION\n &MD\n  STEP_START_VAL {step}\n &END MD\n&END MOTION\n"
            "&FORCE_EVAL\n METHOD QS\n&END FORCE_EVAL\n&EXT_RESTART\n&END EXT_RESTART\n")


def test_a_restart_file_cut_short_continues_from_its_backup_or_stops_leaving_the_outputs(tmp_path):
    settings = MDSettings(project="w", steps=20)
    text = md_input(SYMBOLS, POSITIONS, 5.0, settings=settings).render()
    assert _keyword(text, "MOTION/PRINT/RESTART", ("BACKUP_COPIES",)) == "1"  # the writer keeps one backup
    (tmp_path / "w.inp").write_text(text)
    ener = tmp_path / "w-1.ener"
    ener.write_text("".join(f"{k} {0.5 * k} 0 0 0 0 0\n" for k in range(9)))
    cut = restart_text(8)[:40]  # CP2K killed while writing step 8's restart file
    (tmp_path / "w-1.restart").write_text(cut)
    with pytest.raises(ValueError, match="w-1.restart is cut short.*no complete backup.*outputs are left"):
        run_cp2k(tmp_path, restart=True)
    assert ener.read_text().count("\n") == 9 and (tmp_path / "w-1.restart").read_text() == cut
    (tmp_path / "w-1.restart.bak-2").write_text(restart_text(6))
    (tmp_path / "w-1.restart.bak-1").write_text(restart_text(7))
    with pytest.warns(UserWarning, match="cut short.*continuing from its backup w-1.restart.bak-1"):
        assert _plan(tmp_path / "w.inp", True, None) == ("w", 7, 13)  # the newest backup: step 7, 13 to go
    assert (tmp_path / "w-1.restart").read_text() == restart_text(7)


def test_fortran_record_files_are_whole_or_cut(tmp_path):
    import struct

    records = b"".join(struct.pack("<i", len(r)) + r + struct.pack("<i", len(r)) for r in (b"abcd" * 5, b"x" * 12, b""))
    path = tmp_path / "w.wfn"
    for data, whole in ((records, True), (records[:-1], False), (records[:30], False), (b"", False),
                        (records + b"\0\0", False)):
        path.write_bytes(data)
        assert _complete_records(path) is whole, data


def test_continuation_input_sets_steps_and_ext_restart():
    text = md_input(SYMBOLS, POSITIONS, 5.0, settings=MDSettings(steps=20)).render()
    continued = _continuation(text, "mld-1.restart", 5)
    assert _keyword(text, "MOTION/MD", ("STEPS",)) == "20"
    assert _keyword(continued, "MOTION/MD", ("STEPS",)) == "5"
    assert _keyword(continued, "EXT_RESTART", ("RESTART_FILE_NAME",)) == "mld-1.restart"
    assert _keyword(text.replace("    STEPS 20\n", ""), "MOTION/MD", ("STEPS",)) is None
    assert _keyword(_continuation(text.replace("    STEPS 20\n", ""), "r", 4), "MOTION/MD", ("STEPS",)) == "4"


def test_keywords_of_the_shared_input(embedded_run_dir):
    text = (embedded_run_dir / "h2o-32.inp").read_text()
    assert _keyword(text, "GLOBAL", ("PROJECT", "PROJECT_NAME")) == "h2o-32"
    assert _keyword(text, "MOTION/MD", ("STEPS",)) == "20000"


def xyz_frame(step: int) -> str:
    return f"2\n i = {step:8d}, time = {0.5 * step:8.3f}, E = -1.0\n H 0 0 0\n H 0 0 {step}\n"


def test_trim_output_drops_frames_after_the_restart_step_and_partial_records(tmp_path):
    xyz = tmp_path / "w-pos-1.xyz"
    xyz.write_text("".join(xyz_frame(step) for step in range(5)) + "2\n i = 5, time = 2.5\n H 0 0")
    trim_output(xyz, 3)
    assert xyz.read_text() == "".join(xyz_frame(step) for step in range(4))
    ener = tmp_path / "w-1.ener"
    rows = [f"{step} {0.5 * step} 1 2 3 4 5\n" for step in range(5)]
    ener.write_text("# header\n" + "".join(rows) + "5 2.5 1 2")
    trim_output(ener, 3)
    assert ener.read_text() == "# header\n" + "".join(rows[:4])
    trim_output(tmp_path / "absent.xyz", 3)


def test_cli_writes_an_input(tmp_path, capsys):
    out = tmp_path / "run" / "w.inp"
    argv = ["cp2k", "input", "--waters", "2", "--preset", "xtb", "--steps", "5", "--seed", "4",
            "--set", "MOTION/MD/TEMPERATURE=250", "--project", "w", "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "STEPS 5" in text and "TEMPERATURE 250" in text and "METHOD XTB" in text
    assert text.count("\n      O ") == 2 and "&VELOCITY" in text
    assert main(argv[:-4] + ["--set", "bad", "--out", str(out)]) == 2
    assert "override must look like SECTION/KEY=VALUE" in capsys.readouterr().err


def test_cli_input_from_a_frame_of_the_shared_run(tmp_path, embedded_run_dir):
    out = tmp_path / "h2o.inp"
    argv = ["cp2k", "input", "--from", f"{embedded_run_dir}:3", "--preset", "dzvp", "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert text.count("\n      H ") == 64 and text.count("\n      O ") == 32 and "&VELOCITY" in text
    assert "ABC 9.8528 9.8528 9.8528" in text
