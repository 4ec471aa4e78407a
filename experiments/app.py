"""``mld app``: step the agents in a browser, a Mesa 3.3 ``SolaraViz`` page.

Mesa's ``SolaraViz`` gives the sidebar: Reset / Play / Step, the model parameters (``model_params``),
and the step counter.  Four custom ``@solara.component``s fill its grid, each taking the model like
any Mesa component:

* :func:`BoxView`: the periodic box in 3-D (a Plotly ``scatter3d``): O and H spheres, the box edges,
  the O-H bonds of :func:`experiments.analysis.bond_graph`, coloured by species, loss or |force|.
  Click an atom to inspect it; drag to rotate, scroll to zoom (the view survives updates);
* :func:`Inspector`: one agent's species, position, velocity, force, loss value and invariants, with
  "Step this agent" (the model's agent-by-agent path, ``MolecularModel.step_agent``) and
  "Finish the step";
* :func:`TimeSeries`: temperature, kinetic energy and mean loss per species from the model's
  ``DataCollector``;
* :func:`Structure`: the O-H bond length and H-O-H angle histograms of the current frame.

Mesa's Reset builds the model class with the values of ``model_params``.  That class is
:class:`WaterApp`, a small ``mesa.Model`` holding the :class:`MolecularModel` (``.sim``) or, when
the parameters are impossible (a bad loss file, a negative temperature, N = 0), the message saying
why: the page then shows that message and the server carries on.  :func:`make_model` is the one
place that constructs a ``MolecularModel``.

Figures are Plotly JSON drawn by plotly.js through :class:`PlotlyFigure`, a small Vue template
(Plotly's own ``FigureWidget`` sends its 5 MB bundle with every widget).  Mesa's Play steps in a
thread; :meth:`WaterApp.step` waits until the browser has painted the previous step, so the page
keeps up and Pause acts at once, however slow the drawing.

:func:`serve` runs the Solara server in this process (uvicorn, production mode, no auto-reload, no
telemetry) on ``127.0.0.1`` and prints the URL once it listens.  The browser needs no network: the
JavaScript that Solara would fetch from a CDN comes from the ``solara-assets`` package, plotly.js
from the ``plotly`` package.
"""

from __future__ import annotations

import functools
import html
import math
import os
import socket
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

import ipyvuetify
import mesa
import numpy as np
import plotly
import solara
import solara.server.settings
import traitlets

with warnings.catch_warnings():  # Mesa 3.3's ComponentsView trips Solara's hook linter (harmless)
    warnings.filterwarnings("ignore", message=".*ComponentsView.*use_state.*", category=UserWarning)
    from mesa.visualization import SolaraViz
    from mesa.visualization.utils import force_update, update_counter

from agents.descriptor_loss import DescriptorLoss
from agents.geometry import displacement
from agents.loss_file import load_losses
from environment.builders import water_box
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.analysis import bond_graph, hoh_angles, nearest_oxygen
from experiments.inputs import learn_losses
from learning.cp2k.reader import read_trajectory
from learning.splits import PAPER_SPLIT

#: Environment variables through which :func:`serve` hands ``--loss`` and ``--data`` to the page.
LOSS_ENV, DATA_ENV = "MLD_APP_LOSS", "MLD_APP_DATA"
#: The embedded default fit learns on every DEFAULT_STRIDE-th frame (about 2 s, once per process).
DEFAULT_STRIDE = 4
CP2K_FRAME, WATER_BOX = "CP2K frame", "water box"
NEWTONIAN, FINITE_TAU = "Newtonian", "finite tau"
COLOR_BY = ("species", "loss", "force")
SPECIES_COLORS = {"O": "#d62728", "H": "#b0bec5"}
SPECIES_TEXT = {"O": "#c62828", "H": "#546e7a"}
SPECIES_SIZES = {"O": 11.0, "H": 6.0}
LINE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
#: Mesa's Play waits at most this long (s) for the browser to draw the previous step (WaterApp.step).
FRAME_WAIT_S = 2.0
CARD_HEIGHT = 375  # px: Mesa's grid gives each component about 390 px
#: Plotly sizes an autosized figure by its container; as a flex item it would grow to its content.
CSS = """
.mld-card .mld-plot { width: 100%; min-width: 0; }
.mld-card .v-data-table td, .mld-card .v-data-table th { height: 24px !important; padding: 0 8px !important; }
"""

#: plotly.js for the page: Plotly's Python package ships it; Solara serves it under /static/assets.
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data"
if str(PLOTLY_JS) not in solara.server.settings.assets.extra_locations:
    solara.server.settings.assets.extra_locations.append(str(PLOTLY_JS))

#: Per browser session (Solara keeps one value per kernel): the inspected agent and the colouring.
selected_agent = solara.reactive(0)
color_by = solara.reactive("species")


# -- inputs -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def load_trajectory(data: str | None = None):
    """The CP2K run ``data`` (directory or ``.inp``), or the embedded one; read once per process."""
    return read_trajectory(data)


@functools.lru_cache(maxsize=4)
def default_losses(data: str | None = None):
    """The embedded default fit: :func:`experiments.inputs.learn_losses` on every 4th frame."""
    return learn_losses(load_trajectory(data), stride=DEFAULT_STRIDE)


@functools.lru_cache(maxsize=16)
def _load_losses(path: str, mtime_ns: int):
    return load_losses(path)


def resolve_losses(loss: str | None, data: str | None = None):
    """``loss`` empty: the embedded default fit; otherwise the JSON file ``loss`` (``ValueError`` if bad)."""
    loss = (loss or "").strip()
    if loss in ("", "default"):
        return default_losses(data)
    path = Path(loss).expanduser()
    if not path.is_file():
        raise ValueError(f"loss file {path} does not exist")
    return _load_losses(str(path.resolve()), path.stat().st_mtime_ns)


def _number(label: str, text, kind=float, minimum=None, positive=False, empty=None):
    """``text`` (from a text field) as ``kind``; ``ValueError`` naming ``label`` when impossible."""
    if text is None or (isinstance(text, str) and not text.strip()):
        if empty is not None:
            return empty[0]
        raise ValueError(f"{label} is required")
    try:
        value = kind(str(text).strip()) if isinstance(text, str) else kind(text)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"{label} must be finite, got {text!r}")
    if positive and not value > 0:
        raise ValueError(f"{label} must be positive, got {text!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{label} must be at least {minimum}, got {text!r}")
    return value


# -- the model ----------------------------------------------------------------------------------
def make_model(symbols, positions, box, losses, velocities, *, dynamics=NEWTONIAN, dt=0.5,
               temperature=None, tdamp=25.0, max_force=None, tau=None, seed=None) -> MolecularModel:
    """The one place that constructs the :class:`MolecularModel`: Newtonian (velocity Verlet with a
    Nosé-Hoover thermostat at ``temperature`` unless it is None, forces clipped at ``max_force``) or
    finite tau (``tau``)."""
    if dynamics == NEWTONIAN:
        thermostat = NoseHooverChain(temperature, tdamp_fs=tdamp, chain_length=1) if temperature else None
        integrator = VelocityVerlet(dt, thermostat, max_force)
    else:
        integrator = LearningDynamics(dt, tau)
    return MolecularModel(symbols, positions, box, losses, velocities=velocities, integrator=integrator, seed=seed,
                          allow_other_box=True)


class WaterApp(mesa.Model):
    """What Mesa's SolaraViz steps and resets: one :class:`MolecularModel` (``sim``) built from the
    page's parameters (strings from text fields are parsed here), or ``error``, the reason it could
    not be built or stepped on.  ``step`` finishes a partial step when one is in progress."""

    def __init__(self, loss="", start=CP2K_FRAME, frame=None, waters="32", dynamics=NEWTONIAN,
                 temperature="450", tdamp="25", dt=0.5, max_force="10", tau="100", seed="42", data=None):
        super().__init__()
        self.sim: MolecularModel | None = None
        self.error: str | None = None
        self.description = ""
        self.lock = threading.RLock()
        self._drawn: threading.Event | None = None  # set by the page once it has drawn a frame
        try:
            self.sim, self.description = self._build(loss, start, frame, waters, dynamics, temperature, tdamp,
                                                     dt, max_force, tau, seed, data)
        except Exception as err:  # everything becomes a message on the page, never a stack trace
            self._fail("could not build the model", err)

    @staticmethod
    def _build(loss, start, frame, waters, dynamics, temperature, tdamp, dt, max_force, tau, seed, data):
        seed = _number("seed", seed, int, empty=(None,))
        dt = _number("dt (fs)", dt, positive=True)
        if dynamics not in (NEWTONIAN, FINITE_TAU):
            raise ValueError(f"dynamics must be {NEWTONIAN!r} or {FINITE_TAU!r}, got {dynamics!r}")
        if dynamics == NEWTONIAN:
            temperature = _number("thermostat temperature (K)", temperature, positive=True, empty=(None,))
            tdamp = _number("thermostat damping (fs)", tdamp, positive=True)
            max_force = _number("force clip (eV/Å)", max_force, positive=True, empty=(None,))
            tau = None
        else:
            tau = _number("tau (fs)", tau, positive=True)
        losses = resolve_losses(loss, data)
        if start == WATER_BOX:
            n = _number("water molecules N", waters, int, minimum=1)
            symbols, positions, velocities, box = water_box(n, temperature_K=temperature or 300.0, seed=seed)
            where = f"{n} waters, {box:.2f} Å box"
        elif start == CP2K_FRAME:
            trajectory = load_trajectory(data)
            i = _number("CP2K frame", frame, int, minimum=0, empty=(first_equilibrated_frame(trajectory),))
            if i >= len(trajectory):
                raise ValueError(f"CP2K frame must be below {len(trajectory)} (the run's length), got {i}")
            symbols, positions, velocities, box = (trajectory.symbols, trajectory.positions[i],
                                                   trajectory.velocities[i], trajectory.box)
            where = f"CP2K frame {i}, {box:.2f} Å box"
        else:
            raise ValueError(f"start must be {CP2K_FRAME!r} or {WATER_BOX!r}, got {start!r}")
        losses.check_species(symbols, "loss")
        sim = make_model(symbols, positions, box, losses, velocities, dynamics=dynamics, dt=dt,
                         temperature=temperature, tdamp=tdamp, max_force=max_force, tau=tau, seed=seed)
        if dynamics == NEWTONIAN:
            how = f"Newtonian, {f'Nosé-Hoover {temperature:g} K' if temperature else 'NVE'}, dt {dt:g} fs"
        else:
            how = f"finite tau {tau:g} fs, dt {dt:g} fs"
        return sim, f"{len(symbols)} agents · {where} · {how}"

    def _fail(self, what: str, err: Exception) -> None:
        if not isinstance(err, (ValueError, FloatingPointError)):
            traceback.print_exc()  # unexpected: keep the trace in the server's log, not on the page
        reason = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        self.error = f"{what}: {reason}"
        self.running = False

    # -- stepping (called from the page; Mesa's Play runs step() in a thread) --------------------
    def frame_drawn(self) -> None:
        """The browser has drawn the current state (the 3-D view reports each finished drawing)."""
        if self._drawn is None:
            self._drawn = threading.Event()
        self._drawn.set()

    def _wait_for_the_page(self) -> None:
        """Back-pressure for Mesa's Play: wait until the browser has drawn the previous step.

        Play steps in a thread and asks for a render after each step without waiting for it.  When
        rendering takes longer than the play interval, every render pass sees a newer step (Solara
        then stops with "too many renders"), and a browser slower than the server falls ever further
        behind (Pause would act seconds late).  So the next step waits for the browser's drawing,
        at most FRAME_WAIT_S (a page that draws nothing, e.g. a hidden tab, only slows Play).
        """
        if self._drawn is not None and self.sim is not None and not self.error:
            self._drawn.wait(FRAME_WAIT_S)
            self._drawn.clear()

    def step(self) -> None:
        """One model step (Mesa's Step and Play); finishes the current step if agents are pending."""
        self._wait_for_the_page()
        with self.lock:
            self.steps -= 1  # Mesa counted this call; the count follows the molecular model's (_sync)
            if self.sim is None or self.error:
                self.running = False
            elif self.sim.pending_agents:
                self.finish_step()
            else:
                try:
                    self.sim.step()
                except Exception as err:
                    self._fail(f"step {self.sim.steps + 1} failed", err)
            self._sync()

    def step_agent(self, index: int) -> None:
        """Agent ``index`` takes its part of the current step (``MolecularModel.step_agent``)."""
        with self.lock:
            if self.sim is None or self.error:
                return
            agent = self.sim.agent_list[index]
            pending = self.sim.pending_agents
            if pending and agent not in pending:
                raise ValueError(f"agent {index} has already stepped in this step")  # the model is unchanged
            try:
                self.sim.step_agent(agent)
            except Exception as err:
                self._fail(f"agent {index} could not step", err)
            self._sync()

    def finish_step(self) -> None:
        """The agents that have not yet stepped take their part, completing the step."""
        with self.lock:
            if self.sim is None or self.error or not self.sim.pending_agents:
                return
            try:
                for agent in self.sim.pending_agents:
                    self.sim.step_agent(agent)
            except Exception as err:
                self._fail(f"step {self.sim.steps + 1} failed", err)
            self._sync()

    def _sync(self) -> None:
        if self.sim is not None:
            self.steps = self.sim.steps  # Mesa's counter (shown by SolaraViz) follows the molecular model

    # -- read-only views for the page -------------------------------------------------------------
    def pending(self) -> set[int] | None:
        """Indices of the agents not yet stepped in the current partial step (None: no partial step)."""
        pending = [] if self.sim is None else self.sim.pending_agents
        return {agent.index for agent in pending} or None

    def snapshot(self) -> dict:
        """Copies of the state, taken under the lock (Play steps in another thread)."""
        with self.lock:
            state = self.sim.state()
            state["pending"] = self.pending()
            state["masses"] = self.sim.masses.copy()
            return state


# -- figures: Plotly JSON (dicts of lists), built directly: Plotly's validating objects cost ~0.1 s a frame
def _xyz(points) -> dict:
    """Coordinates of (n, 3) points, NaN rows (gaps between line segments) as null."""
    points = np.asarray(points, dtype=float)
    return {axis: [None if math.isnan(x) else x for x in points[:, i].tolist()] for i, axis in enumerate("xyz")}


def box_figure(state: dict, color: str = "species", selected: int | None = None) -> dict:
    """The periodic box in 3-D: box edges, O-H bonds, atoms (one trace: point i is agent i), and a
    golden halo round the selected agent.  Colours: species, loss (less its species' mean: the species'
    losses differ by large constants) or |force|."""
    symbols, positions, box = np.array(state["symbols"]), np.asarray(state["positions"]), state["box"]
    n = len(symbols)
    scale = float(np.clip((96 / max(n, 1)) ** (1 / 3), 0.55, 1.2))
    sizes = np.array([SPECIES_SIZES.get(s, 8.0) for s in symbols]) * scale
    force = np.linalg.norm(state["forces"], axis=1)
    losses = np.asarray(state["losses"], dtype=float)
    relative = losses.copy()
    for s in set(symbols):
        relative[symbols == s] -= losses[symbols == s].mean()
    marker = {"size": sizes.tolist(), "opacity": 1.0, "line": {"width": 0.5, "color": "#37474f"}}
    colorbar = {"thickness": 12, "len": 0.8, "title": {"side": "right"}}
    if color == "loss":
        marker.update(color=relative.tolist(), colorscale="Viridis", showscale=True,
                      colorbar={**colorbar, "title": {"text": "loss − species mean (eV)", "side": "right"}})
    elif color == "force":
        marker.update(color=force.tolist(), colorscale="Plasma", showscale=True,
                      colorbar={**colorbar, "title": {"text": "|F| (eV/Å)", "side": "right"}})
    else:
        marker["color"] = [SPECIES_COLORS.get(s, "#7f7f7f") for s in symbols]
    hover = [f"{s} {i}<br>loss {h:.3f} eV ({r:+.3f} from the {s} mean)<br>|F| {f:.3f} eV/Å"
             for i, (s, h, r, f) in enumerate(zip(symbols, losses, relative, force))]
    gap = [np.nan] * 3
    corners = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1],
                        [0, 1, 1], [0, 0, 1], gap, [1, 0, 0], [1, 0, 1], gap, [1, 1, 0], [1, 1, 1], gap,
                        [0, 1, 0], [0, 1, 1]]) * box
    traces = [{"type": "scatter3d", "name": "box", "mode": "lines", **_xyz(corners), "hoverinfo": "skip",
               "line": {"color": "#90a4ae", "width": 2}}]
    if "O" in symbols and "H" in symbols:
        graph = bond_graph(symbols, positions, box)
        segments = []
        for i, j in graph.edges:
            o, h = (i, j) if symbols[i] == "O" else (j, i)
            segments += [positions[o], positions[o] + displacement(positions[o], positions[h], box), gap]
        traces.append({"type": "scatter3d", "name": "bonds", "mode": "lines", "hoverinfo": "skip",
                       **_xyz(np.reshape(segments, (-1, 3))), "line": {"color": "#546e7a", "width": 4}})
    traces.append({"type": "scatter3d", "name": "atoms", "mode": "markers", **_xyz(positions), "marker": marker,
                   "text": hover, "hoverinfo": "text"})
    if selected is not None and 0 <= selected < n:
        traces.append({"type": "scatter3d", "name": "selected", "mode": "markers", "hoverinfo": "skip",
                       **_xyz(positions[[selected]]),
                       "marker": {"size": float(sizes[selected]) * 2.6, "color": "rgba(255,179,0,0.55)",
                                  "line": {"width": 2, "color": "#ff8f00"}}})
    axis = {"range": [-0.05 * box, 1.05 * box], "showbackground": False, "gridcolor": "#eceff1",
            "zeroline": False, "showspikes": False}
    scene = {"xaxis": {**axis, "title": {"text": "x (Å)"}}, "yaxis": {**axis, "title": {"text": "y (Å)"}},
             "zaxis": {**axis, "title": {"text": "z (Å)"}}, "aspectmode": "cube",
             "camera": {"eye": {"x": 1.55, "y": 1.45, "z": 1.0}}}
    layout = {"autosize": True, "height": CARD_HEIGHT - 92, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
              "showlegend": False, "scene": scene, "uirevision": "box", "font": {"size": 10}}
    return {"data": traces, "layout": layout}


def box_figure_traces(state: dict) -> list[str]:
    """Names of :func:`box_figure`'s traces before the selection halo (the atoms' trace is last)."""
    symbols = list(state["symbols"])
    return ["box", *(["bonds"] if "O" in symbols and "H" in symbols else []), "atoms"]


def _axis(title: str, **more) -> dict:
    return {"title": {"text": title, "standoff": 4}, "gridcolor": "#eceff1", "zeroline": False,
            "linecolor": "#b0bec5", "showline": True, "automargin": True, **more}


def time_series_figure(table) -> dict:
    """Temperature (and per species, when the collector has ``temperature_<S>``), kinetic energy and
    the change of each species' mean loss since the start (the species' losses differ by large
    constants) against time, from ``DataCollector.get_model_vars_dataframe()``."""
    t = table["time_fs"].to_numpy(float).tolist()
    temperatures = ["temperature"] + [c for c in table.columns if c.startswith("temperature_")]
    rows = [(1, c, "T" if c == "temperature" else f"T {c.split('_', 1)[1]}", 0.0) for c in temperatures]
    rows += [(2, "kinetic_energy", "KE", 0.0)]
    rows += [(3, c, c.split("_", 1)[1], float(table[c].iloc[0])) for c in table.columns if c.startswith("loss_")]
    traces = []
    for i, (row, column, name, offset) in enumerate(rows):
        traces.append({"type": "scatter", "name": name, "meta": column, "x": t, "xaxis": "x",
                       "y": (table[column].to_numpy(float) - offset).tolist(), "yaxis": "y" if row == 1 else f"y{row}",
                       "mode": "lines+markers" if len(t) < 30 else "lines", "marker": {"size": 4},
                       "line": {"width": 1.5, "color": LINE_COLORS[i % len(LINE_COLORS)]},
                       "showlegend": row == 3 or (row == 1 and len(temperatures) > 1)})
    layout = {"autosize": True, "height": CARD_HEIGHT - 70, "margin": {"l": 10, "r": 10, "t": 5, "b": 10},
              "font": {"size": 10}, "uirevision": "series", "plot_bgcolor": "white",
              "legend": {"x": 1.01, "y": 0, "yanchor": "bottom"},
              "xaxis": _axis("time (fs)", anchor="y3"),
              "yaxis": _axis("T (K)", domain=[0.7, 1.0]), "yaxis2": _axis("KE (eV)", domain=[0.36, 0.64]),
              "yaxis3": _axis("Δ mean loss (eV)", domain=[0.0, 0.3])}
    return {"data": traces, "layout": layout}


def time_series_summary(table) -> str:
    """The latest row of the collector in words."""
    last = table.iloc[-1]
    losses = ", ".join(f"{c.split('_', 1)[1]} {last[c]:.3f}" for c in table.columns if c.startswith("loss_"))
    return (f"t {last['time_fs']:.1f} fs · T {last['temperature']:.1f} K · KE {last['kinetic_energy']:.4f} eV"
            f" · mean loss (eV): {losses}")


def structure_figure(symbols, positions, box) -> tuple[dict, str]:
    """Histograms of the O-H bond length (each H to its nearest O) and of the H-O-H angle."""
    _, bonds = nearest_oxygen(symbols, positions, box)
    angles = hoh_angles(symbols, positions, box)
    traces = [
        {"type": "histogram", "name": "O-H", "x": bonds.tolist(), "xbins": {"start": 0.8, "end": 1.4, "size": 0.015},
         "marker": {"color": "#1f77b4"}, "xaxis": "x", "yaxis": "y"},
        {"type": "histogram", "name": "H-O-H", "x": angles.tolist(), "xbins": {"start": 60, "end": 180, "size": 4},
         "marker": {"color": "#ff7f0e"}, "xaxis": "x2", "yaxis": "y2"},
    ]
    layout = {"autosize": True, "height": CARD_HEIGHT - 75, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
              "showlegend": False, "bargap": 0.05, "font": {"size": 10}, "uirevision": "structure",
              "plot_bgcolor": "white",
              "xaxis": _axis("O-H bond (Å)", range=[0.8, 1.4], domain=[0.0, 0.45], anchor="y"),
              "yaxis": _axis("count", anchor="x"),
              "xaxis2": _axis("H-O-H angle (°)", range=[60, 180], domain=[0.55, 1.0], anchor="y2"),
              "yaxis2": _axis("", anchor="x2")}
    angle_text = f"{angles.mean():.1f} ± {angles.std():.1f}° ({angles.size} molecules)" if angles.size else "none"
    summary = f"O-H {bonds.mean():.3f} ± {bonds.std():.3f} Å ({bonds.size} H) · H-O-H {angle_text}"
    return {"data": traces, "layout": layout}, summary


# -- components ---------------------------------------------------------------------------------
class PlotlyFigure(ipyvuetify.VuetifyTemplate):
    """A Plotly figure drawn by plotly.js in the page, updated with ``Plotly.react``.

    Plotly's own ``FigureWidget`` ships its 5 MB JavaScript with every widget (anywidget), which
    made each page load take seconds; here ``plotly.min.js`` comes once per page from the Solara
    server (``/static/assets``, see :data:`PLOTLY_JS`).  ``Plotly.react`` keeps what the user did
    (camera, zoom) while ``uirevision`` stays the same.  A click sets ``clicked``:
    ``{"curve": trace index, "point": point index}``; each drawing, once painted, increments ``drawn``.
    """

    figure = traitlets.Dict().tag(sync=True)
    clicked = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    drawn = traitlets.Int(0).tag(sync=True)  # counts the figures plotly.js has finished drawing
    template = traitlets.Unicode("""
<template><div class="mld-plot" style="width: 100%"><div ref="plot"></div></div></template>
<script>
module.exports = {
  mounted() {
    if (!window.mldPlotly) {
      window.mldPlotly = new Promise((resolve, reject) => {
        if (window.Plotly) return resolve(window.Plotly);
        const script = document.createElement("script");
        script.src = ((window.solara && window.solara.rootPath) || "") + "/static/assets/plotly.min.js";
        script.onload = () => resolve(window.Plotly);
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    window.mldPlotly.then((Plotly) => {
      if (this.gone) return;
      this.Plotly = Plotly;
      this.draw();
      this.$refs.plot.on("plotly_click", (event) => {
        const point = event.points[0];
        this.clicked = {curve: point.curveNumber, point: point.pointNumber, at: Date.now()};
      });
      this.observer = new ResizeObserver((entries) => {  // follow the card's width, not every redraw
        const width = Math.round(entries[0].contentRect.width);
        if (width > 0 && width !== this.width) {
          this.width = width;
          Plotly.Plots.resize(this.$refs.plot);
        }
      });
      this.observer.observe(this.$el);
    });
  },
  watch: { figure() { this.draw(); } },
  methods: {
    draw() {
      if (!this.Plotly || !this.figure.data) return;
      const figure = JSON.parse(JSON.stringify(this.figure));  // plotly.js annotates what it gets
      this.Plotly.react(this.$refs.plot, figure.data, figure.layout, {displaylogo: false, responsive: true})
        .then(() => requestAnimationFrame(() => setTimeout(() => { this.drawn = this.drawn + 1; }, 0)));
    },
  },
  beforeDestroy() {
    this.gone = true;
    if (this.observer) this.observer.disconnect();
    if (this.Plotly) this.Plotly.purge(this.$refs.plot);
  },
};
</script>
""").tag(sync=True)


@solara.component
def Plot(figure: dict, on_click=None, on_drawn=None):
    """:class:`PlotlyFigure` as a Solara element; ``on_click(trace index, point index)``, and
    ``on_drawn()`` once the browser has drawn the figure."""
    def clicked(data):
        if on_click and data:
            on_click(int(data["curve"]), int(data["point"]))

    def drawn(count):
        if on_drawn:
            on_drawn()

    return PlotlyFigure.element(figure=figure, on_clicked=clicked, on_drawn=drawn)


@solara.component
def Card(title: str, classes: str, children=[]):  # noqa: B006 (Solara's children convention)
    """A titled panel that fills Mesa's grid cell."""
    with solara.Column(classes=["mld-card", classes], gap="4px",
                       style={"height": f"{CARD_HEIGHT}px", "overflow-y": "auto", "padding": "6px 10px",
                              "background": "white", "border-radius": "4px",
                              "box-shadow": "0 1px 3px rgba(0,0,0,0.2)"}) as main:
        solara.Text(title, style={"font-weight": "600", "font-size": "15px"})
        solara.Column(children=children, gap="4px")
    return main


@solara.component
def NoModel(model, main: bool = False):
    """The reason there is no model: in full in the main card, briefly elsewhere."""
    if main:
        solara.Error(model.error or "no model", classes=["mld-error"], text=True, dense=True, outlined=True)
    else:
        solara.Text("no model (see the periodic box)", style={"font-size": "12px", "color": "#90a4ae"})


@solara.component
def BoxView(model):
    """The 3-D periodic box: click an atom to inspect it."""
    update_counter.get()
    with Card("Periodic box", "mld-view3d"):
        if model.error:
            NoModel(model, main=True)
        if model.sim is None:
            return
        state = model.snapshot()
        n = len(state["symbols"])
        atoms = box_figure_traces(state).index("atoms")

        def on_click(trace: int, point: int):
            if trace == atoms and 0 <= point < n:
                selected_agent.set(point)

        with solara.Row(style={"align-items": "center"}, gap="8px"):
            solara.Text(model.description, style={"font-size": "12px", "color": "#546e7a"})
            solara.v.Spacer()
            solara.Text("colour by", style={"font-size": "12px"})
            solara.ToggleButtonsSingle(value=color_by, values=list(COLOR_BY), dense=True)
        selected = selected_agent.value if 0 <= selected_agent.value < n else None
        Plot(box_figure(state, color_by.value, selected), on_click=on_click, on_drawn=model.frame_drawn)


def html_table(head: list[str], rows: list[tuple[str, list[tuple[str, str]]]], classes: str) -> str:
    """A small Vuetify-styled table as HTML: ``rows`` of (row class, [(text, cell class), ...]), the
    first cell of each row a header.  (One element for Solara to update instead of one per cell.)"""
    def cell(tag: str, text: str, cls: str = "") -> str:
        attribute = f' class="{cls}"' if cls else ""
        return f"<{tag}{attribute}>{html.escape(text)}</{tag}>"

    head_html = "".join(cell("th", h) for h in head)
    body = "".join(f'<tr class="{row_class}">{cell("th", *cells[0])}{"".join(cell("td", *c) for c in cells[1:])}</tr>'
                   for row_class, cells in rows)
    return (f'<div class="v-data-table v-data-table--dense theme--light {classes}"><div class="v-data-table__wrapper">'
            f"<table><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table></div></div>")


def _vector(name: str, key: str, vector, digits: int, extra: str = "") -> tuple[str, list[tuple[str, str]]]:
    cells = [(name, "")] + [(f"{x:.{digits}f}", f"mld-{key}-{axis}") for x, axis in zip(vector, "xyz")]
    return f"mld-{key}", cells + [(extra, "")]


@solara.component
def Inspector(model):
    """One agent: its numbers, its invariants, and its own part of the step."""
    update_counter.get()
    message = solara.use_reactive("")
    with Card("Agent inspector", "mld-inspector"):
        if model.sim is None:
            NoModel(model)
            return
        sim = model.sim
        state = model.snapshot()
        n = len(state["symbols"])
        index = min(max(int(selected_agent.value), 0), n - 1)
        agent = sim.agent_list[index]
        pending = state["pending"]

        def select(value):
            if value is not None:
                selected_agent.set(min(max(int(value), 0), n - 1))
                message.set("")

        def step_this():
            try:
                model.step_agent(index)
                message.set("")
            except ValueError as err:
                message.set(str(err))
            force_update()

        def finish():
            model.finish_step()
            message.set("")
            force_update()

        with solara.Row(style={"align-items": "center"}, gap="6px"):
            solara.Button(icon_name="mdi-chevron-left", icon=True, on_click=lambda: select(index - 1),
                          disabled=index == 0, classes=["mld-previous"])
            solara.InputInt("agent (or click an atom)", value=index, on_value=select, classes=["mld-agent-index"],
                            style={"max-width": "170px"})
            solara.Button(icon_name="mdi-chevron-right", icon=True, on_click=lambda: select(index + 1),
                          disabled=index == n - 1, classes=["mld-next"])
            symbol = state["symbols"][index]
            solara.Text(f"{symbol} · {agent.species.mass:g} amu", classes=["mld-species"],
                        style={"font-weight": "600", "color": SPECIES_TEXT.get(symbol, "#333")})
        if pending is None:
            status = f"step {state['step']} done · {state['time_fs']:.1f} fs"
        else:
            done = n - len(pending)
            status = (f"step {state['step'] + 1} in progress: {done} of {n} agents have stepped"
                      f" · agent {index} {'has not' if index in pending else 'has'} stepped")
        solara.Text(status, classes=["mld-status"], style={"font-size": "12px", "color": "#546e7a"})
        with solara.Row(gap="6px"):
            solara.Button("Step this agent", on_click=step_this, color="primary", small=True, outlined=True,
                          disabled=model.error is not None or (pending is not None and index not in pending),
                          classes=["mld-step-agent"])
            solara.Button("Finish the step", on_click=finish, color="primary", small=True, outlined=True,
                          disabled=pending is None or model.error is not None, classes=["mld-finish-step"])
        if message.value:
            solara.Warning(message.value, dense=True, text=True)
        force = state["forces"][index]
        solara.HTML("div", unsafe_innerHTML=html_table(["", "x", "y", "z", ""], [
            _vector("position (Å)", "position", state["positions"][index], 5),
            _vector("velocity (Å/fs)", "velocity", state["velocities"][index], 6),
            _vector("force (eV/Å)", "force", force, 4, f"|F| {np.linalg.norm(force):.4f}"),
            ("mld-loss", [("loss H (eV)", ""), (f"{state['losses'][index]:.5f}", "mld-loss-value")]),
        ], "mld-vectors"))
        names, phi, slope, dphi = agent_invariants(sim, index, state["positions"])
        solara.Text(f"invariants of its {symbol} loss at the current positions (eq. 4.1)",
                    style={"font-size": "12px", "color": "#546e7a"})
        rows = [("mld-invariant", [(name, ""), (f"{p:.4g}", "mld-phi"), (f"{g:.4g}", ""),
                                   *[(f"{x:.3g}", "") for x in d]])
                for name, p, g, d in zip(names, phi, slope, dphi)]
        solara.HTML("div", unsafe_innerHTML=html_table(
            ["invariant", "φ", "∂H/∂φ (eV)", "∂φ/∂x", "∂φ/∂y", "∂φ/∂z"], rows, "mld-invariants"))


def agent_invariants(sim: MolecularModel, index: int, positions):
    """Agent ``index``'s invariants at ``positions``: names, phi (P,), dH/dphi (P,) eV and dphi/dq_k (P, 3)."""
    symbol = sim.symbols[index]
    invariants = sim.evaluator.agent_invariants(index, positions)
    if isinstance(sim.losses, DescriptorLoss):
        phi, jacobian = invariants
        slope = sim.losses.A[symbol] + sim.losses.B[symbol] @ phi
        return sim.losses.descriptors.names, phi, slope, jacobian[:, index]
    loss = sim.losses[symbol]
    phi, dphi = invariants
    P = phi.size
    slope = loss.A.reshape(P) + loss.B.reshape(P, P) @ phi.reshape(P)
    return loss.invariants.feature_names, phi.reshape(P), slope, dphi.reshape(P, 3)


@solara.component
def TimeSeries(model):
    """Live plots from the model's DataCollector."""
    update_counter.get()
    with Card("Temperature, kinetic energy, mean loss", "mld-timeseries"):
        if model.sim is None:
            NoModel(model)
            return
        with model.lock:
            table = model.sim.datacollector.get_model_vars_dataframe()
        solara.Text(time_series_summary(table), classes=["mld-timeseries-summary"],
                    style={"font-size": "12px", "color": "#546e7a"})
        Plot(time_series_figure(table))


@solara.component
def Structure(model):
    """O-H bond and H-O-H angle histograms of the current frame."""
    update_counter.get()
    with Card("Structure of the current frame", "mld-structure"):
        if model.sim is None:
            NoModel(model)
            return
        state = model.snapshot()
        if not {"O", "H"} <= set(state["symbols"]):
            solara.Text("bond and angle histograms need both O and H")
            return
        figure, summary = structure_figure(state["symbols"], state["positions"], state["box"])
        solara.Text(summary, classes=["mld-structure-summary"], style={"font-size": "12px", "color": "#546e7a"})
        Plot(figure)


COMPONENTS = [BoxView, Inspector, TimeSeries, Structure]


# -- the page -----------------------------------------------------------------------------------
def settings_from_env() -> tuple[str, str | None]:
    """The ``--loss`` and ``--data`` the server was started with (empty loss: the default fit)."""
    return os.environ.get(LOSS_ENV, ""), os.environ.get(DATA_ENV) or None


def first_equilibrated_frame(trajectory) -> int:
    """The first frame after the equilibration fraction of Sec. 5.1 (the experiments' start)."""
    return int(round(PAPER_SPLIT["equilibration"] * len(trajectory)))


def model_params(loss: str = "", data: str | None = None) -> dict:
    """Mesa ``model_params``: user inputs (dicts) and the fixed CP2K run ``data``."""
    def text(label, value):
        return {"type": "InputText", "value": str(value), "label": label}

    frame = first_equilibrated_frame(load_trajectory(data))

    return {
        "loss": text("loss file (JSON; empty: the embedded default fit)", loss),
        "start": {"type": "Select", "value": CP2K_FRAME, "values": [CP2K_FRAME, WATER_BOX], "label": "start from"},
        "frame": text("CP2K frame", frame),
        "waters": text("water box: molecules N", 32),
        "dynamics": {"type": "Select", "value": NEWTONIAN, "values": [NEWTONIAN, FINITE_TAU], "label": "dynamics"},
        "temperature": text("thermostat temperature (K; empty: NVE)", 450),
        "tdamp": text("thermostat damping (fs)", 25),
        "dt": {"type": "SliderFloat", "value": 0.5, "min": 0.1, "max": 2.0, "step": 0.1, "label": "dt (fs)"},
        "max_force": text("force clip (eV/Å; empty: none)", 10),
        "tau": text("tau (fs, finite-tau dynamics)", 100),
        "seed": text("seed", 42),
        "data": data,
    }


def initial_values(params: dict) -> dict:
    """The keyword arguments Mesa's Reset passes before anything is changed."""
    return {k: (p["value"] if isinstance(p, dict) and "type" in p else p) for k, p in params.items()}


@solara.component
def Page():
    """The page Solara serves: one WaterApp per browser session, in Mesa's SolaraViz."""
    params = solara.use_memo(lambda: model_params(*settings_from_env()), [])
    model = solara.use_memo(lambda: WaterApp(**initial_values(params)), [])
    solara.Style(CSS)
    SolaraViz(model, components=COMPONENTS, model_params=params, play_interval=1,
              name="mld · molecular learning dynamics")


# -- the server and the command line ------------------------------------------------------------
def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve(loss=None, data=None, port: int = 8765, host: str = "127.0.0.1") -> None:
    """Run the page's Solara server here until interrupted; print its URL once it listens.

    The losses and the start are checked (and the default fit learned, numba compiled) before the
    server starts, so a bad ``loss`` or ``data`` is a ``ValueError`` here, and the first page is quick.
    """
    data = str(Path(data).expanduser().resolve()) if data else None
    loss = str(Path(loss).expanduser().resolve()) if loss else ""
    started = time.perf_counter()
    warm = WaterApp(**initial_values(model_params(loss, data)))
    if warm.error:
        raise ValueError(warm.error)
    warm.step()  # compiles (or loads) the numba kernels
    if not _free(host, port):
        raise ValueError(f"port {port} on {host} is in use (--port chooses another)")

    os.environ[LOSS_ENV], os.environ[DATA_ENV] = loss, data or ""
    os.environ["SOLARA_APP"] = "experiments.app"
    os.environ["SERVER_NAME"], os.environ["SERVER_PORT"] = host, str(port)
    import uvicorn
    from solara.server import settings

    settings.main.mode = "production"  # no auto-restart, no file watching
    settings.telemetry.mixpanel_enable = False
    warnings.filterwarnings("ignore", message="Cookies with samesite=none", category=UserWarning)  # 127.0.0.1
    server = uvicorn.Server(uvicorn.Config("solara.server.starlette:app", host=host, port=port, log_level="warning"))
    url = f"http://{host}:{port}/"

    def announce():
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            print(f"mld app: serving {url} (ready in {time.perf_counter() - started:.1f} s; Ctrl-C stops)",
                  flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()


def app_command(args) -> int:
    """``mld app``: serve the page (``args.loss``, ``args.data``, ``args.port``, ``args.host``)."""
    serve(loss=args.loss, data=args.data, port=args.port, host=args.host)
    return 0


def main(argv=None) -> int:
    """``python -m experiments.app [OPTIONS]``: the same as ``mld app [OPTIONS]``."""
    from experiments.cli import main as mld

    try:
        return mld(["app", *(sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    from experiments.app import main as _main  # the importable module, the one Solara serves

    sys.exit(_main())
