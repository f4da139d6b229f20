#!/usr/bin/env python3
"""Loads a page in Debian's headless Chromium with a real viewport of WIDTH x HEIGHT CSS pixels and reports it.

    chromium_page.py URL WIDTH HEIGHT SCREENSHOT.png [full]

(`full`: the screenshot is as tall as the page, for the README's pictures.)

Chromium's --window-size cannot make a window narrower than 500 px (a 390 px --screenshot is a crop of a 500 px
layout), so this drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3 and 4,
NUL-terminated JSON; no extra package): Emulation.setDeviceMetricsOverride (a phone's viewport: mobile, scale
1), navigate, wait for the load event, measure, screenshot. Prints one JSON object on stdout:
{"innerWidth", "scrollWidth", "overflowing": [elements whose right edge passes the viewport], "html"}.
Exit 0 when it could measure; 1 with a message on stderr otherwise.
"""
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

MEASURE = """JSON.stringify((() => {
  const d = document.documentElement;
  const over = Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')).slice(0, 10);
  return {innerWidth: innerWidth, scrollWidth: d.scrollWidth, overflowing: over, html: d.outerHTML};
})())"""


def main():
    url, width, height, png = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    full = sys.argv[5:] == ["full"]
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    profile = tempfile.mkdtemp(prefix="kb-chromium-")

    def fds():
        # Through fresh numbers first: dup2 onto the same number would keep the pipe's close-on-exec flag.
        read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    chrome = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"],
        preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_chrome_r)
    os.close(from_chrome_w)
    deadline = time.monotonic() + 90  # a hang guard, not a measurement
    buffer = b""
    events = []
    next_id = [0]

    def receive():
        nonlocal buffer
        while b"\0" not in buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([from_chrome_r], [], [], left)[0]:
                raise RuntimeError("Chromium did not answer")
            chunk = os.read(from_chrome_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            buffer += chunk
        message, buffer = buffer.split(b"\0", 1)
        return json.loads(message)

    def call(method, params=None, session=None):
        next_id[0] += 1
        message = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = receive()
            if reply.get("id") == next_id[0]:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            events.append(reply)

    def wait_event(name, session):
        while True:
            for e in events:
                if e.get("method") == name and e.get("sessionId") == session:
                    events.remove(e)
                    return e
            events.append(receive())

    try:
        target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call("Page.enable", session=session)
        call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                    "mobile": width < 600}, session=session)
        call("Page.navigate", {"url": url}, session=session)
        wait_event("Page.loadEventFired", session)
        measured = call("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session=session)
        if full:
            tall = call("Runtime.evaluate", {"expression": "document.documentElement.scrollHeight", "returnByValue": True},
                        session=session)["result"]["value"]
            call("Emulation.setDeviceMetricsOverride", {"width": width, "height": max(height, tall), "deviceScaleFactor": 1,
                                                        "mobile": width < 600}, session=session)
        shot = call("Page.captureScreenshot", {"format": "png"}, session=session)
        with open(png, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(measured["result"]["value"])
        try:
            call("Browser.close")
        except RuntimeError:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - reported, then exit 1
        print("chromium_page.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        try:
            chrome.wait(timeout=20)
        except subprocess.TimeoutExpired:
            chrome.kill()
            chrome.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
