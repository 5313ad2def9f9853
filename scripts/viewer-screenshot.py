#!/usr/bin/env python3
"""Screenshot of the web viewer while it plays (docs/viewer.png), through headless Chromium's
DevTools protocol: a --screenshot run captures at page load, before any frame has arrived.

    python3 scripts/viewer-screenshot.py URL OUT.png [SECONDS]

Standard library only: a minimal WebSocket client (RFC 6455, text frames) is enough here.
"""
import base64, json, os, socket, subprocess, sys, tempfile, time

def ws_connect(url):
    assert url.startswith("ws://")
    hostport, path = url[5:].split("/", 1)
    host, port = hostport.split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise SystemExit(f"DevTools refused the WebSocket: {head[:200]!r}")
    return s

def ws_send(s, text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536
                              else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

def recv_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise SystemExit("DevTools closed the connection")
        out += chunk
    return out

def ws_recv(s):
    message = b""
    while True:
        b0, b1 = recv_exact(s, 2)
        n = b1 & 0x7F
        if n == 126: n = int.from_bytes(recv_exact(s, 2), "big")
        elif n == 127: n = int.from_bytes(recv_exact(s, 8), "big")
        message += recv_exact(s, n)
        if b0 & 0x80:
            return message.decode()

class DevTools:
    def __init__(self, url):
        self.s, self.id = ws_connect(url), 0
    def call(self, method, params=None, session=None):
        self.id += 1
        req = {"id": self.id, "method": method, "params": params or {}}
        if session: req["sessionId"] = session
        ws_send(self.s, json.dumps(req))
        while True:
            reply = json.loads(ws_recv(self.s))
            if reply.get("id") == self.id:
                if "error" in reply: raise SystemExit(f"{method}: {reply['error']}")
                return reply.get("result", {})

def main():
    url, out = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 12
    profile = tempfile.mkdtemp(prefix="vidrd-shot-")
    browser = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--no-first-run", "--hide-scrollbars", "--window-size=980,600", "--remote-debugging-port=0",
                                f"--user-data-dir={profile}", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(600):
            if os.path.exists(port_file) and len(open(port_file).read().split()) >= 2: break
            time.sleep(0.05)
        port, path = open(port_file).read().split()[:2]
        dt = DevTools(f"ws://127.0.0.1:{port}{path}")
        target = None
        for _ in range(200):
            target = next((t["targetId"] for t in dt.call("Target.getTargets")["targetInfos"]
                           if t["type"] == "page" and t["url"].startswith(url.split("?")[0])), None)
            if target: break
            time.sleep(0.1)
        session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        # Headless windows lose some height to invisible browser chrome; pin the viewport instead.
        dt.call("Emulation.setDeviceMetricsOverride", {"width": 980, "height": 620, "deviceScaleFactor": 1, "mobile": False}, session)
        time.sleep(seconds)
        stats = dt.call("Runtime.evaluate", {"expression": "JSON.stringify(window.vidrdStats)", "returnByValue": True}, session)
        print("vidrdStats:", stats["result"].get("value"))
        png = dt.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(out, "wb") as f:
            f.write(base64.b64decode(png))
    finally:
        browser.terminate()
        browser.wait(10)

main()
