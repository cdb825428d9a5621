#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium, driven through
chromedriver's WebDriver protocol (plain HTTP, no client library), loads the
admin listener's page while traffic flows and reads what it shows.

usage: browser.py PROXY_PORT ADMIN_PORT SCREENSHOT.png

Checks that the page fills in, that after 100 requests for one URL (1 miss,
99 hits) and 100 for new URLs (misses) it shows 200 requests, 99 hits and a
hit ratio of 49.5%, that the request rate moves, and that every request the
page made went to the admin listener and nowhere else. Writes a screenshot.
"""

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

proxy_port, admin_port, screenshot = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
admin = f"http://127.0.0.1:{admin_port}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


driver_port = free_port()
# Its own process group: chromedriver's browser goes with it, whatever happens.
driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
sid = None


def webdriver(method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", driver_port, timeout=60)
    conn.request(method, path, json.dumps(body) if body is not None else None,
                 {"Content-Type": "application/json"})
    answer = json.loads(conn.getresponse().read() or b"{}")
    value = answer.get("value")
    if isinstance(value, dict) and value.get("error"):
        raise SystemExit(f"webdriver {method} {path}: {value['error']}: {value.get('message', '')[:300]}")
    return value


def fail(why):
    print(f"FAIL: {why}", file=sys.stderr)
    sys.exit(1)


def traffic(paths):
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    for path in paths:
        conn.request("GET", path, headers={"Host": "dash.test"})
        conn.getresponse().read()


try:
    for _ in range(100):
        try:
            webdriver("GET", "/status")
            break
        except OSError:
            time.sleep(0.05)
    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    session = webdriver("POST", "/session", {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1100"]}}}})
    sid = session["sessionId"]

    def script(code):
        return webdriver("POST", f"/session/{sid}/execute/sync", {"script": code, "args": []})

    def text(element_id):
        return script(f"return document.getElementById({json.dumps(element_id)}).textContent")

    def wait_for(what, check, seconds=15):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        fail(f"{what}: the page shows {page_state()}")

    def page_state():
        return {i: text(i) for i in ("state", "rps", "requests-total", "hit-ratio", "byte-hit-ratio")}

    webdriver("POST", f"/session/{sid}/url", {"url": admin + "/"})
    wait_for("the page goes live", lambda: text("state").startswith("live"))

    traffic(["/hot"] * 100 + [f"/new-{n}" for n in range(100)])
    wait_for("200 requests counted", lambda: text("requests-total") == "200 requests, 99 hits")
    ratio = text("hit-ratio")
    if ratio != "49.5%":
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
        conn.request("GET", "/dashboard.json")
        now = json.loads(conn.getresponse().read())
        fail(f"hit ratio {ratio!r}, not 49.5% (99 hits of 200); the JSON now: {now['current']}, "
             f"points {now['series']['points'][-8:]}")
    rate = float(text("rps").replace(",", ""))
    if rate <= 0:
        fail(f"request rate {rate}")
    print(f"page: {page_state()}")
    wait_for("the top URLs", lambda: "dash.test/hot" in text("top-hits"))

    # Traffic keeps coming: the rate follows it.
    def more():
        traffic(["/hot"] * 300)
        return float(text("rps").replace(",", "")) > rate
    wait_for("the request rate rises with traffic", more, seconds=20)

    requested = script("return performance.getEntriesByType('resource').map(e => e.name)"
                       ".concat([location.href])")
    outside = [url for url in requested if not url.startswith(admin + "/")]
    if outside:
        fail(f"the page asked outside the admin listener: {outside}")
    print(f"every request of the page went to {admin} ({len(requested)} of them)")

    png = webdriver("GET", f"/session/{sid}/screenshot")
    with open(screenshot, "wb") as out:
        out.write(base64.b64decode(png))
    print(f"screenshot: {screenshot}")
finally:
    if sid:
        try:
            webdriver("DELETE", f"/session/{sid}")  # closes the browser
        except (OSError, SystemExit):
            pass
    os.killpg(driver.pid, signal.SIGTERM)
    driver.wait()
