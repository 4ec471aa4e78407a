"""``report.md``: every number of ``mld reproduce`` beside the paper's."""

from __future__ import annotations

from pathlib import Path

from agents.weights import PAPER_SELECTED


def _f(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _value(value, unit: str) -> str:
    """A table cell: the number in a precision that suits its unit."""
    if value is None:
        return "—"
    digits = {"Å": 3, "deg": 1, "K": 0, "cm^-1": 0, "": 4}.get(unit, 3)
    return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _observables_section(o: dict | None) -> list[str]:
    """The water observables of the learned NVT run beside CP2K's, with a pass/fail column."""
    if not o:
        return []
    return [
        "## Water as a physicist checks it (learned NVT run against CP2K)",
        "",
        "Computed by `mld analyze`'s code for both runs: g(r), bond and angle distributions from the bond "
        "graph, vibrational density of states (Welch segments as long as the CP2K run), MSD, per-species "
        "temperatures, the closest pair of nuclei. 'reference too short' marks an observable the CP2K run "
        "is too short to give (its spectral resolution or its length); the learned value is still shown. "
        "Figures and CSV tables are in `observables/`.",
        "",
        "| observable | learned | CP2K | tolerance | status |",
        "|---|---|---|---|---|",
        *[f"| {r['description'].replace('|', '&#124;')} ({r['unit'] or '-'}) | {_value(r['learned'], r['unit'])} | "
          f"{_value(r['reference'], r['unit'])} | {r['tolerance']:g} | {r['status']} |" for r in o["comparison"]],
        "",
        "![g(r)](observables/rdf.png)",
        "![angles](observables/angles.png)",
        "![VDOS](observables/vdos.png)",
        "![temperatures](observables/temperatures.png)",
        "",
    ]


def _beyond_section(b: dict | None) -> list[str]:
    """Own vs shared, radial vs many-body losses (``experiments.beyond``): one row per variant, CP2K last."""
    if not b:
        return []

    def number(value, scale, digits):
        return "—" if value is None else f"{value:.1e}" if digits is None else _f(scale * value, digits)

    def learned(v, key, scale=1.0, digits=1):
        return number(((v["observables"] or {}).get(key) or {}).get("learned"), scale, digits)

    def row(name, v):
        rmse, nve, obs = v["test_rmse"] or {}, v["nve"], v["observables"] or {}
        drift = (f"{_f(nve.get('energy_eV_per_ps'), 3)} eV/ps" if v["form"] == "shared"
                 else f"{_f(nve.get('temperature_K_per_ps'), 0)} K/ps")
        if nve.get("blew_up"):
            drift = f"blew up at step {nve['steps']}"
        status = f"{sum(o['status'] == 'pass' for o in obs.values())}/{len(obs)} pass" if obs else "—"
        if v["blew_up"]:
            status += f"; stopped at step {v['nvt_steps']}"
        return (f"| {name} | {_f(rmse.get('O'))} / {_f(rmse.get('H'))} | {learned(v, 'hoh_angle_mean_deg')} | "
                f"{learned(v, 'non_h2o_fraction', 100)} | {learned(v, 'T_O_K', digits=0)} / {learned(v, 'T_H_K', digits=0)} | "
                f"{learned(v, 'com_kinetic_share', digits=None)} | {drift} | {learned(v, 'min_distance_A', digits=2)} | {status} |")

    c = b["cp2k"] or {}
    cp2k = lambda key, scale=1.0, digits=1: number(c.get(key), scale, digits)  # noqa: E731
    return [
        "## Beyond the paper: own vs shared losses, radial vs many-body invariants",
        "",
        f"Each variant is fitted (quadratic, eq. 4.5) on {b['fit_frames']} frames and run in NVT from CP2K frame "
        f"{b['start_frame']} ({b['thermostat']}, target {_f(b['target_temperature_K'], 0)} K, no force clipping, "
        "net force removed); drift: NVE from the same frame, energy KE + ΣH (eV/ps) for the shared form, which "
        "conserves it, heating rate (K/ps) for the paper's own form, which has no energy. Status: the observables "
        "within tolerance of CP2K (table above). Figures and CSV in `beyond/`.",
        "",
        "| variant | test RMSE O / H | H-O-H (°) | non-H2O (%) | T_O / T_H (K) | COM share | NVE drift | min distance (Å) | vs CP2K |",
        "|---|---|---|---|---|---|---|---|---|",
        *[row(name, v) for name, v in b["variants"].items()],
        f"| CP2K | — | {cp2k('hoh_angle_mean_deg')} | {cp2k('non_h2o_fraction', 100)} | {cp2k('T_O_K', digits=0)} / "
        f"{cp2k('T_H_K', digits=0)} | {cp2k('com_kinetic_share', digits=None)} | — | {cp2k('min_distance_A', digits=2)} | — |",
        "",
        "![variants](beyond/variants.png)",
        "",
    ]


def write_report(s: dict, path) -> Path:
    """Write the markdown report of a ``reproduce`` summary ``s`` (as in ``summary.json``)."""
    d, sel, w, tau, tim = s["dataset"], s["selection"], s["water"], s["tau"], s["timing"]
    lines = [
        "# Molecular learning dynamics: reproduction report",
        "",
        f"Data: `{d['data']}` — {d['frames']} frames of {d['atoms']} atoms, box {_f(d['box_A'])} Å, "
        f"dt {_f(d['dt_fs'], 2)} fs; mean temperature after equilibration {_f(d['mean_temperature_K'], 0)} K "
        "(paper: 128 waters, 1000 steps, about 470 K)." + (" **Quick mode** (fits on every 4th frame, short runs)." if s.get("quick") else ""),
        "",
        "![Fig. 1](dataset/fig1_kinetic_energy.png)",
        "",
        "## Learning the losses (Sec. 5.2)",
        "",
        f"Backward elimination over 18 weight functions took {_f(sel['wall_time_s'], 1)} s.",
        "",
        "| species | selected here | paper |",
        "|---|---|---|",
        *[f"| {k} | {', '.join(v)} | {PAPER_SELECTED.get(k, '—').replace(',', ', ')} |" for k, v in sel["selected"].items()],
        "",
        "Table 1, relative RMSE (5.2) with the selected invariants:",
        "",
        "| species | loss | train | validation | test | paper |",
        "|---|---|---|---|---|---|",
        *[f"| {r['species']} | {r['order']} | {_f(r['train'])} | {_f(r['validation'])} | {_f(r['test'])} | {_f(r['paper'], 2)} |"
          for r in sel["table1"]],
        "",
        "![Fig. 2](selection/fig2_selection.png)",
        "",
        "## Learning-based simulation against CP2K (Sec. 5.3)",
        "",
        f"{w['steps']} steps of 0.5 fs from CP2K frame {w['start_frame']}; {w['thermostat']}, target "
        f"{_f(w['target_temperature_K'], 0)} K; forces clipped at {_f(w['max_force_eV_per_A'], 1)} eV/Å.",
        "",
        "| quantity | learning-based | CP2K |",
        "|---|---|---|",
        f"| mean temperature (K) | {_f(w['mean_temperature_K'], 0)} | {_f(w['cp2k_mean_temperature_K'], 0)} |",
        f"| mean kinetic energy (eV) | {_f(w['mean_kinetic_energy_eV'])} | {_f(w['cp2k_mean_kinetic_energy_eV'])} |",
        f"| O-H bond mean ± std (Å) | {_f(w['oh_mean_A'])} ± {_f(w['oh_std_A'])} | {_f(w['cp2k_oh_mean_A'])} ± {_f(w['cp2k_oh_std_A'])} |",
        f"| longest O-H distance (Å) | {_f(w['oh_max_A'], 2)} | {_f(w['cp2k_oh_max_A'], 2)} |",
        f"| H-O-H angle mean ± std (°) | {_f(w['hoh_mean_deg'], 1)} ± {_f(w['hoh_std_deg'], 1)} | {_f(w['cp2k_hoh_mean_deg'], 1)} ± {_f(w['cp2k_hoh_std_deg'], 1)} |",
        f"| O-H stretch peak (cm⁻¹) | {_f(w['oh_peak_cm1'], 0)} | {_f(w['cp2k_oh_peak_cm1'], 0)} |",
        f"| molecule-frames not H2O | {_f(100 * w['non_water_fraction'], 1)} % | {_f(100 * w['cp2k_non_water_fraction'], 1)} % |",
        "",
        f"The learned agent forces are not conservative (no global potential, Sec. 2): in NVE from the same "
        f"frame they heat the system at {_f(w['nve_heating']['temperature_K_per_ps'], 0)} K/ps "
        f"(KE + ½ΣH changes at {_f(w['nve_heating']['energy_eV_per_ps'], 2)} eV/ps, over "
        f"{w['nve_heating'].get('steps', '—')} steps"
        + (f"; the NVE run stopped: {w['nve_heating']['blew_up']}" if w['nve_heating'].get('blew_up') else "")
        + "); the thermostat removes that heat. "
        + (f"**The NVT run stopped early: {w['nvt_blew_up']}.** " if w.get("nvt_blew_up") else "") +
        "Molecules come from the bond graph of every frame (each H bonded to its nearest O within 1.3 Å); "
        "a hydrogen that changes owner or leaves is counted in the last row, not hidden. "
        "The paper reports comparable kinetic energy, bond length and spectra and a somewhat larger "
        "H-O-H angle in the learning-based run.",
        "",
        "![Fig. 3](water/fig3_kinetic_energy.png)",
        "![Fig. 4](water/fig4_oh_bond.png)",
        "![Fig. 5](water/fig5_oh_four_hydrogens.png)",
        "![Fig. 6](water/fig6_spectrum.png)",
        "![Fig. 7](water/fig7_hoh_angle.png)",
        "",
        *_observables_section(s.get("observables")),
        "## Finite tau against the Newtonian limit (Sec. 3)",
        "",
        f"{tau['steps']} steps from frame {tau['start_frame']}, learning mode against NVE velocity Verlet "
        f"(deviation shrinks with tau: {tau['deviation_shrinks_with_tau']}).",
        "",
        "| tau (fs) | mean deviation (Å) | final deviation (Å) | damping rate (1/fs) | rate × tau |",
        "|---|---|---|---|---|",
        *[f"| {r['tau_fs']:g} | {r['mean_deviation_A']:.2e} | {r['final_deviation_A']:.2e} | "
          f"{r['damping_rate_per_fs']:.2e} | {r['damping_rate_times_tau']:.2f} |" for r in tau["sweep"]],
        "",
        "![tau](tau/tau_limit.png)",
        "",
        "## Speed",
        "",
        "| system | learned (s/step) | CP2K (s/step) | speed-up |",
        "|---|---|---|---|",
        *[f"| {r['system']} | {r['learned_s_per_step']:.2e} | {_f(r['cp2k_s_per_step'], 1)} | {r['speedup']:.3g} |"
          for r in tim["rows"]],
        "",
        tim["note"] + f" The paper: CP2K {tim['paper_cp2k_s_per_step_128']} s/step, learned "
        f"{tim['paper_learned_s_per_step_128']} s/step for 128 waters.",
        "",
        *_beyond_section(s.get("beyond")),
        f"Total wall time of this report: {_f(s['wall_time_s'], 0)} s.",
    ]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
