"""The ``mld app`` page without a browser: its model, and its components rendered with Solara's
test utilities (``solara.render`` and the widget finder), clicking the same buttons a user clicks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

solara = pytest.importorskip("solara", reason="the app needs the 'app' extra (solara, plotly)")
pytest.importorskip("plotly", reason="the app needs the 'app' extra (solara, plotly)")

import ipyvuetify as vw  # noqa: E402
from ipywidgets import Widget  # noqa: E402

from experiments import app  # noqa: E402

@pytest.fixture(autouse=True)
def fresh_page_state(monkeypatch):
    """Each test starts with agent 0 selected, species colouring and the default --loss/--data."""
    app.selected_agent.set(0)
    app.color_by.set("species")
    monkeypatch.delenv(app.LOSS_ENV, raising=False)
    monkeypatch.delenv(app.DATA_ENV, raising=False)
    yield


def defaults(**changes) -> dict:
    return {**app.initial_values(app.model_params()), **changes}


@pytest.fixture
def model():
    return app.WaterApp(**defaults())


def by_class(rc, cls) -> list:
    """The widgets under the render context that carry the CSS class ``cls`` (any trait holding
    widgets is followed: children, slots, Mesa's grid items)."""
    found, seen, stack = [], set(), list(rc.find().widgets)
    while stack:
        value = stack.pop(0)
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, Widget) and id(value) not in seen:
            seen.add(id(value))
            if cls in (getattr(value, "class_", None) or "").split():
                found.append(value)
            stack.extend(getattr(value, name) for name in value.keys if name not in ("layout", "_model_id"))
    return found


def texts(rc, cls) -> list[str]:
    """The text of the widgets with class ``cls``."""
    return ["".join(map(str, w.children)) for w in by_class(rc, cls)]


def html_cells(rc, cls) -> list[str]:
    """Text of the table cells with class ``cls`` in the page's HTML blocks (the inspector's tables)."""
    blocks = [w.unsafe_innerHTML for w in rc.find(solara.widgets.HTML).widgets]
    return [c for block in blocks for c in re.findall(rf'class="{cls}">([^<]*)<', block)]


def cells(rc, row: str) -> np.ndarray:
    return np.array([float(html_cells(rc, f"mld-{row}-{axis}")[0]) for axis in "xyz"])


def figure(rc) -> dict:
    """The (only) figure the component sends to the browser: Plotly JSON, ``data`` and ``layout``."""
    return rc.find(app.PlotlyFigure).widget.figure


def trace(fig: dict, name: str) -> dict:
    (found,) = [t for t in fig["data"] if t.get("name") == name or t.get("meta") == name]
    return found


# -- the model behind the page ------------------------------------------------------------------
def test_default_model_is_the_embedded_run_with_the_default_fit(model):
    assert model.error is None and model.running
    assert len(model.sim.agent_list) == 96 and model.sim.integrator.name == "newtonian"
    assert model.sim.integrator.thermostat is not None and model.sim.integrator.max_force == 10.0
    assert f"CP2K frame {app.first_equilibrated_frame(app.load_trajectory())}" in model.description
    model.step()
    assert model.steps == model.sim.steps == 1
    assert len(model.sim.datacollector.get_model_vars_dataframe()) == 2


def test_make_model_finite_tau_and_nve():
    learning = app.WaterApp(**defaults(dynamics=app.FINITE_TAU, tau="50", dt=0.25))
    assert learning.error is None
    assert learning.sim.integrator.name == "learning" and learning.sim.integrator.tau == 50 and learning.sim.dt == 0.25
    nve = app.WaterApp(**defaults(temperature="", max_force=""))
    assert nve.sim.integrator.thermostat is None and nve.sim.integrator.max_force is None


def test_water_box_start(model):
    box = app.WaterApp(**defaults(start=app.WATER_BOX, waters="8", seed="3"))
    assert box.error is None and box.sim.symbols == ["O", "H", "H"] * 8


@pytest.mark.parametrize("changes, words", [
    ({"temperature": "-5"}, "thermostat temperature (K) must be positive, got '-5'"),
    ({"temperature": "0"}, "thermostat temperature (K) must be positive"),
    ({"temperature": "hot"}, "thermostat temperature (K) must be a number"),
    ({"start": app.WATER_BOX, "waters": "0"}, "water molecules N must be at least 1"),
    ({"frame": "100000"}, "CP2K frame must be below"),
    ({"dynamics": app.FINITE_TAU, "tau": "0"}, "tau (fs) must be positive"),
    ({"loss": "/nonexistent/loss.json"}, "loss file /nonexistent/loss.json does not exist"),
])
def test_impossible_parameters_become_a_message(changes, words):
    model = app.WaterApp(**defaults(**changes))
    assert model.sim is None and not model.running
    assert model.error.startswith("could not build the model: ") and words in model.error
    model.step()  # Mesa's Step on a model that could not be built does nothing
    assert model.steps == 0 and model.error.startswith("could not build")


def test_a_step_that_fails_stops_the_model_with_a_message(model):
    def blow_up():
        raise FloatingPointError("step 1: positions or velocities are no longer finite")

    model.sim.step = blow_up
    _, rc = solara.render(app.BoxView(model), handle_error=False)
    model.step()
    app.force_update()
    assert not model.running and model.steps == 0
    assert model.error == "step 1 failed: FloatingPointError: step 1: positions or velocities are no longer finite"
    assert "no longer finite" in str(by_class(rc, "mld-error")[0].children)
    assert rc.find(app.PlotlyFigure)  # the last state stays on view


@pytest.mark.parametrize("content, words", [
    ("{not json", "not JSON"),
    (json.dumps({"format": "something else"}), "unknown format"),
    (json.dumps({"format": "mld-agent-losses/1", "species": [{"species": "O"}]}), "lacks the field"),
])
def test_bad_loss_files_become_a_message(tmp_path, content, words):
    path = tmp_path / "loss.json"
    path.write_text(content)
    model = app.WaterApp(**defaults(loss=str(path)))
    assert model.sim is None and words in model.error


def test_a_loss_file_for_other_species_is_refused(tmp_path):
    from agents.loss import pair_potential_losses

    path = pair_potential_losses(("C", "N"), ["exp(a=1)"], np.ones((2, 2, 1))).save(tmp_path / "cn.json")
    model = app.WaterApp(**defaults(loss=str(path)))
    assert model.sim is None and "loss" in model.error and "species" in model.error


def test_a_saved_loss_file_is_used(tmp_path):
    path = app.default_losses().save(tmp_path / "fit.json")
    model = app.WaterApp(**defaults(loss=str(path)))
    assert model.error is None
    assert model.sim.losses["O"].invariants.names == app.default_losses()["O"].invariants.names


# -- components -----------------------------------------------------------------------------------
def test_inspector_steps_one_agent_then_finishes_the_step(model):
    app.selected_agent.set(40)
    _, rc = solara.render(app.Inspector(model), handle_error=False)
    assert texts(rc, "mld-species")[0].startswith("H ·")
    agent = model.sim.agent_list[40]
    np.testing.assert_allclose(cells(rc, "position"), agent.position, atol=6e-6)
    np.testing.assert_allclose(cells(rc, "velocity"), agent.velocity, atol=6e-7)
    np.testing.assert_allclose(float(html_cells(rc, "mld-loss-value")[0]), agent.loss_value, atol=6e-6)
    phi, _ = model.sim.evaluator.agent_invariants(40, model.sim.positions)  # eq. (4.1) read directly
    shown = np.array([float(x) for x in html_cells(rc, "mld-phi")])
    assert len(shown) == phi.size == len(model.sim.losses["H"].invariants.feature_names)
    np.testing.assert_allclose(shown, phi.reshape(-1), rtol=1e-3)
    before = np.array(agent.position)  # (a view into the space otherwise)

    rc.find(vw.Btn, children=["Step this agent"]).widget.click()
    assert model.pending() == set(range(96)) - {40} and model.steps == 0
    after = cells(rc, "position")
    np.testing.assert_allclose(after, agent.position, atol=6e-6)
    assert np.linalg.norm(after - before) > 1e-4
    assert "1 of 96 agents have stepped" in texts(rc, "mld-status")[0]
    assert rc.find(vw.Btn, children=["Step this agent"]).widget.disabled  # it has had its turn

    rc.find(vw.Btn, children=["Finish the step"]).widget.click()
    assert model.pending() is None and model.steps == model.sim.steps == 1
    assert texts(rc, "mld-status")[0].startswith("step 1 done")
    assert rc.find(vw.Btn, children=["Finish the step"]).widget.disabled


def test_agent_by_agent_equals_the_vectorized_step(model):
    twin = app.WaterApp(**defaults())
    for i in (5, 0, 95):
        model.step_agent(i)
    model.finish_step()
    twin.step()
    np.testing.assert_allclose(model.sim.positions, twin.sim.positions, atol=1e-12)


def test_inspector_selects_by_index(model):
    _, rc = solara.render(app.Inspector(model), handle_error=False)
    field = rc.find(vw.TextField, label="agent (or click an atom)").widget
    field.v_model = "3"
    field.fire_event("keyup.enter", None)
    assert app.selected_agent.value == 3
    np.testing.assert_allclose(cells(rc, "position"), model.sim.agent_list[3].position, atol=6e-6)


def test_time_series_follow_the_datacollector(model):
    _, rc = solara.render(app.TimeSeries(model), handle_error=False)
    fig = figure(rc)
    assert {t["meta"] for t in fig["data"]} == {"temperature", "kinetic_energy", "loss_O", "loss_H"}
    assert len(trace(fig, "temperature")["y"]) == 1
    model.step()
    model.step()
    app.force_update()  # what Mesa's Step does after stepping
    fig = figure(rc)
    table = model.sim.datacollector.get_model_vars_dataframe()
    np.testing.assert_allclose(trace(fig, "temperature")["y"], table["temperature"])
    np.testing.assert_allclose(trace(fig, "temperature")["x"], [0.0, 0.5, 1.0])
    assert trace(fig, "loss_O")["y"][0] == 0.0  # change since the start


def test_time_series_plot_per_species_temperatures_once_collected():
    import pandas as pd

    table = pd.DataFrame({"time_fs": [0.0, 0.5], "temperature": [300.0, 301.0], "temperature_O": [290.0, 291.0],
                          "temperature_H": [305.0, 306.0], "kinetic_energy": [1.0, 1.1], "loss_O": [5.0, 6.0]})
    names = [t["meta"] for t in app.time_series_figure(table)["data"]]
    assert names == ["temperature", "temperature_O", "temperature_H", "kinetic_energy", "loss_O"]


def test_structure_histograms_of_the_current_frame(model):
    _, rc = solara.render(app.Structure(model), handle_error=False)
    fig = figure(rc)
    from experiments.analysis import hoh_angles

    waters = len(hoh_angles(model.sim.symbols, model.sim.positions, model.sim.box))  # O with exactly two H
    assert len(trace(fig, "O-H")["x"]) == 64 and len(trace(fig, "H-O-H")["x"]) == waters > 25
    assert "(64 H)" in texts(rc, "mld-structure-summary")[0]


def test_box_view_colours_and_click_to_select(model):
    _, rc = solara.render(app.BoxView(model), handle_error=False)
    fig = figure(rc)
    atoms = trace(fig, "atoms")
    assert len(atoms["x"]) == 96
    assert atoms["marker"]["color"] == [app.SPECIES_COLORS[s] for s in model.sim.symbols]
    assert len(trace(fig, "bonds")["x"]) == 3 * 64  # 64 O-H bonds, each two ends and a gap
    np.testing.assert_allclose(trace(fig, "box")["x"][1], model.sim.box)
    app.color_by.set("force")
    atoms = trace(figure(rc), "atoms")
    np.testing.assert_allclose(atoms["marker"]["color"], np.linalg.norm(model.sim.forces, axis=1))
    index = [t["name"] for t in figure(rc)["data"]].index("atoms")
    rc.find(app.PlotlyFigure).widget.clicked = {"curve": index, "point": 17, "at": 1}  # what plotly.js sends
    assert app.selected_agent.value == 17
    halo = trace(figure(rc), "selected")
    np.testing.assert_allclose([halo["x"][0], halo["y"][0], halo["z"][0]], model.sim.positions[17])


def render_page():
    """The page as Solara serves it: inside its app layout (which holds SolaraViz's sidebar)."""
    return solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)[1]


def test_page_reset_with_an_impossible_temperature_shows_the_error():
    rc = render_page()
    rc.find(vw.Html, children=["Step: 0"]).assert_single()  # Mesa's step counter
    rc.find(vw.Btn, children=["Step"]).widget.click()  # Mesa's Step
    rc.find(vw.Html, children=["Step: 1"]).assert_single()
    field = rc.find(vw.TextField, label="thermostat temperature (K; empty: NVE)").widget
    field.v_model = "-5"
    field.fire_event("keyup.enter", None)
    rc.find(vw.Btn, children=["Reset"]).widget.click()  # Mesa's Reset builds WaterApp(temperature="-5")
    errors = by_class(rc, "mld-error")
    assert errors and all("thermostat temperature (K) must be positive" in str(e.children) for e in errors)
    rc.find(vw.Btn, children=["Step"]).widget.click()  # nothing to step, and nothing breaks
    field.v_model = "300"
    field.fire_event("keyup.enter", None)
    rc.find(vw.Btn, children=["Reset"]).widget.click()
    assert not by_class(rc, "mld-error")
    assert rc.find(app.PlotlyFigure)


def test_page_with_a_bad_loss_from_the_command_line_shows_the_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    monkeypatch.setenv(app.LOSS_ENV, str(bad))
    rc = render_page()
    assert any("not JSON" in str(w.children) for w in by_class(rc, "mld-error"))


def test_serve_refuses_a_bad_loss_before_starting(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        app.serve(loss=str(tmp_path / "missing.json"), port=1)


def test_command_line_options():
    from experiments.cli import build_parser

    args = build_parser().parse_args(["app", "--loss", "l.json", "--data", "run", "--port", "9000", "--host", "0.0.0.0"])
    assert (args.loss, args.data, args.port, args.host) == ("l.json", "run", 9000, "0.0.0.0")


def test_another_cp2k_run_as_the_start(embedded_run_dir, tmp_path):
    loss = app.default_losses().save(tmp_path / "fit.json")
    params = app.model_params(str(loss), str(embedded_run_dir))
    model = app.WaterApp(**app.initial_values(params))
    assert model.error is None and "CP2K frame" in model.description
    model.step()
    assert model.steps == 1
