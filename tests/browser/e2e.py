#!/usr/bin/env python3
"""End-to-end test of the web view in a real browser (Debian's headless Chromium).

Starts `holterd serve` (embedded broker, SQLite, a throw-away login), then drives
Chromium through ChromeDriver's W3C WebDriver API (Python standard library
only): login, the overview, a WFDB recording upload, the device page, a beat
page, the Holter summary (printed to PDF as the report), a labelled beats
upload with its evaluation, a beat of it, and logout.
Every visited page must log no browser console error, and every link on it
must answer below 400.

Usage: tests/browser/e2e.py [path/to/holterd]   (default target/release/holterd)
Needs: chromium and chromium-driver (apt install chromium chromium-driver).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "holterd")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "100_0")
PASSWORD = "browser-test-password-42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


class WebDriver:
    """The few WebDriver commands this test needs."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium") or "/usr/bin/chromium",
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,1000"],
                    },
                    "goog:loggingPrefs": {"browser": "ALL"},
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            raise Failure(f"WebDriver {method} {path}: {e.read().decode(errors='replace')}")

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def url(self):
        return self.s("GET", "/url")

    def find(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    def find_all(self, css):
        return [next(iter(e.values())) for e in
                self.s("POST", "/elements", {"using": "css selector", "value": css})]

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def select(self, name, value):
        self.click(f"select[name={name}] option[value='{value}']")

    def text(self, css="body"):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def script(self, js, *args):
        return self.s("POST", "/execute/sync", {"script": js, "args": list(args)})

    def console_errors(self):
        try:
            entries = self.s("POST", "/se/log", {"type": "browser"})
        except Failure:
            entries = self.call("POST", f"/session/{self.session}/log", {"type": "browser"})
        return [e for e in entries if e.get("level") == "SEVERE"]

    def wait_for(self, cond, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if cond():
                    return
            except Failure:
                pass
            time.sleep(0.25)
        raise Failure(f"timed out waiting for {what}; at {self.url()}:\n{self.text()[:2000]}")

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except Exception:
            pass


def page_ok(d, what):
    """No console error, not an error page, and every link answers below 400."""
    errors = d.console_errors()
    check(not errors, f"{what}: browser console errors: {errors}")
    title = d.script("return document.title;")
    check("Error" not in title and "Not Found" not in title, f"{what}: error page {title!r}")
    broken = d.script(
        """
        const links = [...new Set([...document.querySelectorAll('a[href]')]
            .map(a => new URL(a.getAttribute('href'), location.href).href)
            .filter(h => h.startsWith(location.origin)))];
        const bad = [];
        for (const h of links) {
            const x = new XMLHttpRequest();
            x.open('GET', h, false);
            x.send();
            if (x.status >= 400) bad.push(h + ' ' + x.status);
        }
        return bad;
        """
    )
    check(not broken, f"{what}: broken links {broken}")
    shots = os.environ.get("HOLTER_E2E_SCREENSHOTS")
    if shots:
        import base64
        os.makedirs(shots, exist_ok=True)
        png = base64.b64decode(d.s("GET", "/screenshot"))
        with open(os.path.join(shots, what.replace(" ", "-").replace(",", "") + ".png"), "wb") as f:
            f.write(png)
    print(f"ok  {what}: {d.url()}")


def print_report(d):
    """Checks the print stylesheet (print media emulated through ChromeDriver's
    DevTools bridge: navigation and forms hidden, a page break before each
    section but the first), then prints the page to PDF on A4 (W3C WebDriver
    "Print Page"): a PDF of several pages, kept as holterd-e2e-report.pdf in
    the system's temp dir (or at $HOLTER_E2E_REPORT)."""
    import base64
    import re
    d.s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {"media": "print"}})
    printed = d.script("""
        const shown = s => [...document.querySelectorAll(s)].filter(e => getComputedStyle(e).display !== 'none').length;
        const breaks = [...document.querySelectorAll('section.report')].map(e => getComputedStyle(e).breakBefore);
        return {nav: shown('header, nav'), forms: shown('form'), actions: shown('p.actions'), breaks: breaks,
                color: getComputedStyle(document.querySelector('h1')).color,
                background: getComputedStyle(document.body).backgroundColor};
    """)
    d.s("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {"media": ""}})
    check(printed["nav"] == 0 and printed["forms"] == 0 and printed["actions"] == 0,
          f"printed, navigation, forms and the CSV link are hidden: {printed}")
    check(printed["breaks"][:1] != ["page"] and all(b == "page" for b in printed["breaks"][1:])
          and len(printed["breaks"]) >= 3, f"a page break before each section but the first: {printed}")
    check(printed["color"] == "rgb(0, 0, 0)" and printed["background"] == "rgb(255, 255, 255)",
          f"printed black on white: {printed}")
    pdf = base64.b64decode(d.s("POST", "/print", {
        "page": {"width": 21.0, "height": 29.7}, "background": True,
        "margin": {"top": 1.0, "bottom": 1.0, "left": 1.0, "right": 1.0}}))
    check(pdf.startswith(b"%PDF-"), f"print gives a PDF, not {pdf[:16]!r}")
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))
    check(pages >= len(printed["breaks"]), f"one section a page: {pages} page(s) for "
          f"{len(printed['breaks'])} sections, {len(pdf)} bytes")
    check(10_000 < len(pdf) < 20_000_000, f"printed report of a sane size: {len(pdf)} bytes")
    path = os.environ.get("HOLTER_E2E_REPORT") or os.path.join(tempfile.gettempdir(), "holterd-e2e-report.pdf")
    with open(path, "wb") as f:
        f.write(pdf)
    print(f"ok  printed report: {pages} A4 pages, {len(pdf)} bytes, {path}")


def main():
    work = tempfile.mkdtemp(prefix="holterd-browser-")
    http_port, broker_port, driver_port = free_port(), free_port(), free_port()
    pw_hash = subprocess.run([BINARY, "auth", "hash-password"], input=PASSWORD + "\n",
                             capture_output=True, text=True, check=True).stdout.strip()
    config = os.path.join(work, "holterd.toml")
    with open(config, "w") as f:
        f.write(f"""
[store]
sqlite_path = "{work}/holterd.sqlite"
[embedded_broker]
listen = "127.0.0.1:{broker_port}"
[pipeline]
models = ["{ROOT}/models/cnn-lstm-inter"]
[http]
listen = "127.0.0.1:{http_port}"
models_dir = "{ROOT}/models"
users = [{{ name = "alice", role = "uploader", password_hash = "{pw_hash}" }}]
""")
    daemon = subprocess.Popen([BINARY, "serve", "--config", config],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = f"http://127.0.0.1:{http_port}"
    d = None
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(app + "/healthz", timeout=1)
                urllib.request.urlopen(f"http://127.0.0.1:{driver_port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        d = WebDriver(driver_port)

        # Login (the overview first answers with the login form).
        d.go(app + "/")
        d.type("input[name=name]", "alice")
        d.type("input[name=password]", PASSWORD)
        d.click("button[type=submit]")
        d.wait_for(lambda: "Devices" in d.script("return document.title;"), "the overview")
        page_ok(d, "overview after login")

        # A WFDB recording, uploaded as a device's recording.
        d.go(app + "/uploads")
        page_ok(d, "uploads")
        d.select("kind", "wfdb")
        d.type("input[name=device]", "e2e-100")
        d.type("input[type=file]", f"{FIXTURE}.hea\n{FIXTURE}.dat")
        d.click("#upload button[type=submit]")
        d.wait_for(lambda: "/devices/e2e-100" in d.url(), "the device page after the upload")
        check("Heart rate" in d.text(), "device page shows the heart rate")
        page_ok(d, "device page")
        check(len(d.find_all("svg.chart path.s1")) == 1, "heart-rate trend drawn")

        # Every beat, then one beat page.
        d.select("verdict", "all")
        d.click("form.filters button[type=submit]")
        d.wait_for(lambda: "verdict=all" in d.url(), "the filtered list")
        page_ok(d, "device page, all beats")
        d.click("table a[href*='/beats/']")
        d.wait_for(lambda: "/beats/" in d.url(), "a beat page")
        check(len(d.find_all("svg.ecg-paper")) == 1 and len(d.find_all("svg.chart")) == 1,
              "beat page draws the strip on ECG paper and the beat")
        check(len(d.find_all("svg.ecg-paper line.paper-major")) >= 10, "the strip's 5 mm grid")
        check(len(d.find_all("svg.ecg-paper line.normal, svg.ecg-paper line.abnormal, "
                             "svg.ecg-paper text.peak")) >= 5,
              "R peaks of the ±5 s strip are marked")
        page_ok(d, "beat page")
        d.click("a[href*='-1 h'], p.pager a[href*='/devices/e2e-100?']")
        d.wait_for(lambda: "/beats/" not in d.url(), "back to the device")

        # Holter summary, reached from the device page, and printed as the report.
        d.go(app + "/devices/e2e-100")
        d.click("a[href*='/devices/e2e-100/summary?']")
        d.wait_for(lambda: "/summary" in d.url(), "the summary page")
        text = d.text()
        for part in ["Total beats", "Heart rate, day and night", "Night (22:00", "Heart-rate variability",
                     "SDNN", "RMSSD", "pNN50"]:
            check(part in text, f"summary shows {part!r}")
        check(len(d.find_all("svg.timeline path.s1")) == 1, "the timeline draws the heart-rate trend")
        check(len(d.find_all("section.report")) >= 3, "the summary is in report sections")
        page_ok(d, "summary")
        print_report(d)

        # A labelled beats file built from stored beats: the evaluation mode.
        beats = []
        d.go(app + "/api/v1/devices/e2e-100/beats?verdict=all&limit=40&from=0")
        times = [b["r_time_us"] for b in json.loads(d.text())["beats"]]
        for i, t in enumerate(times):
            d.go(f"{app}/api/v1/devices/e2e-100/beats/{t}")
            values = json.loads(d.text())["beat"]
            beats.append(",".join(f"{v:.6f}" for v in values) + (",1" if i % 4 == 0 else ",0"))
        csv_path = os.path.join(work, "labelled.csv")
        with open(csv_path, "w") as f:
            f.write("\n".join(beats) + "\n")
        d.go(app + "/uploads")
        d.select("kind", "beats")
        d.type("input[type=file]", csv_path)
        d.click("#upload button[type=submit]")
        d.wait_for(lambda: "Cohen" in d.text(), "the evaluation of the labelled upload")
        page_ok(d, "upload result")
        d.click("nav.tabs a[href*='tab=normal']")
        d.wait_for(lambda: "tab=normal" in d.url(), "the normal tab")
        d.click("table a[href*='/beats/']")
        d.wait_for(lambda: len(d.find_all("svg.chart")) == 1, "an uploaded beat's waveform")
        page_ok(d, "uploaded beat")

        # A bad file is refused with its row and column.
        bad = os.path.join(work, "bad.csv")
        with open(bad, "w") as f:
            f.write(beats[0].rsplit(",", 1)[0] + "\n1,2,x\n")
        d.go(app + "/uploads")
        d.type("input[type=file]", bad)
        d.click("#upload button[type=submit]")
        d.wait_for(lambda: "row 2" in d.text(), "the bad-file message")
        # The refusal itself (400) is the only console entry allowed here.
        errors = [e for e in d.console_errors() if "status of 400" not in e["message"]]
        check(not errors, f"bad upload: unexpected console errors {errors}")
        check(d.find_all("#upload"), "the upload form is shown again with the message")

        d.go(app + "/models")
        check("cnn-lstm" in d.text() and "paper" in d.text(), "models page lists models and the paper")
        page_ok(d, "models")

        d.click("form.logout button")
        d.wait_for(lambda: "/login" in d.url(), "logout")
        d.go(app + "/")
        check("Log in" in d.script("return document.title;"), "after logout the overview asks for login")
        print("browser end-to-end test passed")
        return 0
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        with open(os.path.join(work, "log")) as f:
            sys.stderr.write(f.read()[-3000:])
        return 1
    finally:
        if d:
            d.quit()
        driver.terminate()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
