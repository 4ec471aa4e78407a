"""The ``mld app`` page in a real browser: the server runs as ``python -m experiments.app`` on a free
port of 127.0.0.1, and Debian's Chromium (``apt-get install chromium chromium-driver``) drives it
through Selenium, with the driver given explicitly so that Selenium never downloads a browser.

Screenshots go to ``$MLD_ARTIFACTS`` (default ``tests/artifacts/``, which ignores itself).

``python tests/test_app_browser.py docs/app`` takes the README's screenshots and measures how many
frames per second the page shows for 32 and 128 waters.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1600,1100")
SERVER_START_S = 180  # imports, the default fit (~2 s) and, on a fresh machine, numba's compile (~10 s)
PAGE_S = 60
TEMPERATURE_FIELD = "thermostat temperature (K; empty: NVE)"
LOSS_FIELD = "loss file (JSON; empty: the embedded default fit)"

with warnings.catch_warnings():  # until pyproject.toml registers the marker
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    browser_mark = pytest.mark.browser

pytestmark = [
    browser_mark,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="Debian's chromium and chromium-driver are not installed "
                              "(apt-get install chromium chromium-driver)"),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the 'test' extra)")
pytest.importorskip("solara", reason="the app needs the 'app' extra (solara, plotly)")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


# -- the server and the browser -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m experiments.app`` from the checkout, its output drained into ``lines``."""

    def __init__(self, *args: str):
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "experiments.app", "--host", "127.0.0.1",
                                         "--port", str(self.port), *args], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._ready: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for_url()

    def _drain(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("mld app: serving"):
                self._ready.put(line.split()[3])
        self._ready.put("")

    def _wait_for_url(self) -> str:
        try:
            url = self._ready.get(timeout=SERVER_START_S)
        except queue.Empty:
            url = ""
        if not url:
            self.stop()
            raise RuntimeError("mld app did not start:\n" + "".join(self.lines[-40:]))
        return url

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def chromium():
    """Headless Debian Chromium with a fresh profile; the driver path is explicit (no Selenium Manager)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # belt and braces: Selenium Manager must not fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="mld-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def server():
    running = Server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def driver():
    browser = chromium()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("MLD_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("MLD_ARTIFACTS"):
        (folder / ".gitignore").write_text("*\n")
    return folder


# -- reading and driving the page ---------------------------------------------------------------
def wait(driver, condition, what: str, timeout: float = PAGE_S):
    """Explicit wait for ``condition(driver)`` to be truthy; its value."""
    def attempt(d):
        try:
            return condition(d)
        except StaleElementReferenceException:  # Solara re-rendered the element under us
            return False
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(attempt)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def plotted(driver, card: str, trace: str):
    """Points (x, y) of the Plotly trace named ``trace`` (its ``name`` or ``meta``) in card ``card``."""
    return driver.execute_script("""
        const gd = document.querySelector(`.${arguments[0]} .js-plotly-plot`);
        if (!gd || !gd.data || !gd._fullLayout) return null;  // not drawn yet
        const t = gd.data.find((t) => t.name === arguments[1] || t.meta === arguments[1]);
        return t ? [Array.from(t.x || []), Array.from(t.y || [])] : null;
    """, card, trace)


def open_page(driver, server):
    """A fresh session (a new Solara kernel, so a new model), once the 3-D view has drawn its atoms."""
    driver.get(server.url)
    wait(driver, lambda d: (plotted(d, "mld-view3d", "atoms") or [[]])[0], "the 3-D view's atoms")


def steps(driver) -> int:
    """Mesa's step counter."""
    text = driver.find_element(By.XPATH, "//*[starts-with(normalize-space(text()), 'Step: ')]").text
    return int(text.split(":")[1])


def button(driver, label: str):
    return driver.find_element(By.XPATH, f"//button[normalize-space(.)='{label}']")


def click(driver, label: str):
    wait(driver, lambda d: button(d, label).is_enabled() and button(d, label), f"the {label} button").click()


def text_of(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def vector(driver, row: str) -> np.ndarray:
    return np.array([float(text_of(driver, f".mld-{row}-{axis}")) for axis in "xyz"])


def type_into(driver, label: str, text: str):
    """Replace the text of the field labelled ``label`` and commit it with Enter.

    The text arrives as one ``input`` event: ipywidgets holds back a widget's second state update
    until the server has answered the first, so after keystroke-by-keystroke typing the Enter event
    could overtake the last characters (a user's pause before Enter hides that).
    """
    field = driver.find_element(By.XPATH, f"//label[normalize-space(.)='{label}']/following-sibling::input")
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", field, text)
    field.send_keys(Keys.ENTER)


def choose(driver, label: str, value: str):
    """Pick ``value`` in the (Vuetify) select labelled ``label``."""
    driver.find_element(By.XPATH, f"//label[normalize-space(.)='{label}']/..").click()
    wait(driver, lambda d: d.find_element(
        By.XPATH, f"//div[contains(@class, 'menuable__content__active')]//div[normalize-space(.)='{value}']"),
        f"the option {value}").click()


def errors(driver) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".mld-error"))


# -- the tests ----------------------------------------------------------------------------------
def test_step_advances_the_counter_and_the_plotted_temperature(driver, server, artifacts):
    open_page(driver, server)
    assert steps(driver) == 0
    t0, temperature0 = wait(driver, lambda d: plotted(d, "mld-timeseries", "temperature"), "the temperature plot")
    assert t0 == [0.0] and len(temperature0) == 1
    atoms0 = plotted(driver, "mld-view3d", "atoms")
    assert len(atoms0[0]) == 96

    click(driver, "Step")  # Mesa's Step
    wait(driver, lambda d: steps(d) == 1, "the step counter to reach 1")
    t, temperature = wait(driver, lambda d: (p := plotted(d, "mld-timeseries", "temperature")) and len(p[0]) == 2 and p,
                          "a second temperature point")
    assert t == [0.0, 0.5]
    assert temperature[0] == pytest.approx(temperature0[0]) and temperature[1] != temperature[0]
    assert 100 < temperature[1] < 1000
    wait(driver, lambda d: plotted(d, "mld-view3d", "atoms")[0] != atoms0[0], "the atoms to move")
    driver.save_screenshot(str(artifacts / "app-step.png"))

    click(driver, "Step")
    wait(driver, lambda d: steps(d) == 2 and len(plotted(d, "mld-timeseries", "temperature")[0]) == 3,
         "step 2 plotted")


def test_step_one_agent_and_the_inspector_shows_its_new_position(driver, server, artifacts):
    from agents.units import EV_PER_AMU_A2_FS2

    open_page(driver, server)
    type_into(driver, "agent (or click an atom)", "40")
    wait(driver, lambda d: text_of(d, ".mld-species").startswith("H"), "agent 40, a hydrogen")
    position, velocity, force = vector(driver, "position"), vector(driver, "velocity"), vector(driver, "force")
    box = float(plotted(driver, "mld-view3d", "box")[0][1])  # the box edge runs from 0 to L
    assert len(driver.find_elements(By.CSS_SELECTOR, ".mld-invariant")) > 0

    click(driver, "Step this agent")
    wait(driver, lambda d: "1 of 96 agents have stepped" in text_of(d, ".mld-status"), "the inspector's status")
    moved = wait(driver, lambda d: not np.allclose(p := vector(d, "position"), position) and list(p),
                 "the inspector to show the new position")
    # velocity Verlet's half-kick and drift: q + dt (v + dt/2 F/m), in the box
    dt, mass = 0.5, 1.00794
    expected = np.mod(position + dt * (velocity + 0.5 * dt * force / (mass * EV_PER_AMU_A2_FS2)), box)
    np.testing.assert_allclose(moved, expected, atol=2e-4)
    assert steps(driver) == 0  # one agent's part of the step is not a step
    assert not button(driver, "Step this agent").is_enabled()
    driver.save_screenshot(str(artifacts / "app-step-agent.png"))

    click(driver, "Finish the step")
    wait(driver, lambda d: steps(d) == 1, "the step to complete")
    wait(driver, lambda d: text_of(d, ".mld-status").startswith("step 1 done"), "the inspector's status")


def test_impossible_parameters_show_a_message_and_the_server_keeps_running(driver, server, artifacts):
    open_page(driver, server)
    type_into(driver, TEMPERATURE_FIELD, "-5")
    click(driver, "Reset")
    wait(driver, lambda d: "thermostat temperature (K) must be positive" in errors(d), "the temperature error")
    assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text
    driver.save_screenshot(str(artifacts / "app-error.png"))

    type_into(driver, TEMPERATURE_FIELD, "450")
    type_into(driver, LOSS_FIELD, "/nonexistent/loss.json")
    click(driver, "Reset")
    wait(driver, lambda d: "loss file /nonexistent/loss.json does not exist" in errors(d), "the loss file error")

    type_into(driver, LOSS_FIELD, "")
    click(driver, "Reset")
    wait(driver, lambda d: not errors(d) and (plotted(d, "mld-view3d", "atoms") or [[]])[0], "the model back")
    assert server.alive()
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert response.status == 200


# -- README screenshots and frames per second ---------------------------------------------------
def frames_per_second(driver, seconds: float = 10.0) -> tuple[float, float]:
    """(frames/s while playing, frames/s of single Step clicks, each waited for in the browser)."""
    latencies = []
    for _ in range(5):
        before, start = steps(driver), time.perf_counter()
        click(driver, "Step")
        wait(driver, lambda d: steps(d) == before + 1, "a step")
        latencies.append(time.perf_counter() - start)
    before = steps(driver)
    button(driver, "▶").click()
    start = time.perf_counter()
    time.sleep(seconds)
    button(driver, "❚❚").click()
    playing = (steps(driver) - before) / (time.perf_counter() - start)
    return playing, 1 / float(np.median(latencies))


def docs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    server, driver = Server(), chromium()
    try:
        open_page(driver, server)
        for _ in range(3):
            click(driver, "Step")
        wait(driver, lambda d: steps(d) == 3, "step 3")
        type_into(driver, "agent (or click an atom)", "40")
        wait(driver, lambda d: text_of(d, ".mld-species").startswith("H"), "agent 40")
        click(driver, "Step this agent")
        wait(driver, lambda d: "1 of 96" in text_of(d, ".mld-status"), "agent 40 stepped")
        time.sleep(1.0)  # let WebGL finish drawing
        driver.save_screenshot(str(out / "app-32-waters.png"))
        results = {32: frames_per_second(driver)}

        button(driver, "loss").click()  # colour by each agent's loss
        choose(driver, "start from", "water box")
        type_into(driver, "water box: molecules N", "128")
        click(driver, "Reset")
        wait(driver, lambda d: len((plotted(d, "mld-view3d", "atoms") or [[]])[0]) == 384, "128 waters")
        time.sleep(1.0)
        driver.save_screenshot(str(out / "app-128-waters-loss.png"))
        results[128] = frames_per_second(driver)

        type_into(driver, TEMPERATURE_FIELD, "-5")
        click(driver, "Reset")
        wait(driver, lambda d: "must be positive" in errors(d), "the error")
        driver.save_screenshot(str(out / "app-error.png"))
        for waters, (playing, clicking) in results.items():
            print(f"{waters} waters: {playing:.1f} frames/s playing, {clicking:.1f} frames/s clicking Step")
    except Exception:
        driver.save_screenshot(str(out / "failure.png"))
        raise
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/app"))
