"""Headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol: open a page and take
screenshots until one passes a check (viser's page needs some seconds to connect, and the first frame
of an image size is compiled before it is drawn), so the check waits for the frame, not a fixed time."""

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import cv2
import numpy as np

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def screenshot_until(url: str, ok, timeout: float = 60.0, size=(1000, 700)) -> tuple[np.ndarray, bool]:
  """Opens `url` in headless Chromium and screenshots it once a second until `ok(image)`, at most
  `timeout` seconds. Returns (the last (H, W, 3) uint8 RGB screenshot, whether `ok` held)."""
  import websockets  # pylint: disable=g-import-not-at-top  (viser's dependency)
  port = free_port()
  profile = tempfile.mkdtemp(prefix="fmgs_chromium_")
  proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                           f"--window-size={size[0]},{size[1]}", "about:blank"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + timeout
    pages = None
    while time.monotonic() < deadline and not pages:
      try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
          pages = [p for p in json.load(r) if p.get("type") == "page"]
      except OSError:
        time.sleep(0.2)
    if not pages:
      raise RuntimeError(f"{CHROMIUM} did not open its DevTools port {port}")

    async def drive():
      async with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
        ids = iter(range(1, 1_000_000))

        async def call(method, **params):
          i = next(ids)
          await ws.send(json.dumps({"id": i, "method": method, "params": params}))
          while True:
            msg = json.loads(await ws.recv())
            if msg.get("id") == i:
              return msg.get("result", {})

        await call("Page.navigate", url=url)
        image, good = None, False
        while time.monotonic() < deadline:
          await asyncio.sleep(1.0)
          png = base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])
          image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
          if ok(image):
            good = True
            break
        return image, good

    return asyncio.run(drive())
  finally:
    proc.terminate()
    try:
      proc.wait(10)
    except subprocess.TimeoutExpired:
      proc.kill()
    shutil.rmtree(profile, ignore_errors=True)


def available() -> bool:
  return os.path.exists(CHROMIUM)
