#!/usr/bin/env python3
"""End-to-end tests of the real tray app through tauri-driver + WebKitWebDriver (plain WebDriver
over HTTP, standard library only). Started by scripts/tray-e2e.sh, which provides the simulator,
the config, Xvfb and tauri-driver.

Checks: an order dropped in the inbox appears in the dashboard and turns paid; the last-payment
strip tells a decline with what to tell the patient, a success after it leaves no failure shown,
a timeout is told with its reason; the day follows the clock (a simulated midnight) and another
day is marked as history; every visible string of the Chinese interface is Chinese; a settings
error is shown next to its field; the language switch works; a second launch of the app exits
and leaves the first one running; beside the service the app shows status only. Notifications go
to a real notification server (dunst) and are read back from the session bus (dbus-monitor's
record): a timeout notifies with its reason, a POS lost stays on screen (critical, no expiry) and
the POS back takes its place, a click on an order's notice opens the dashboard at that order, the
service's orders notify too. Screenshots go to $E2E_SHOTS."""

import base64
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request

DRIVER = os.environ.get("TAURI_DRIVER", "http://127.0.0.1:4444")
APP = os.environ["E2E_APP"]
CFG = os.environ["E2E_CONFIG"]
HISBRIDGE = os.environ["E2E_HISBRIDGE"]
SHOTS = os.environ.get("E2E_SHOTS", ".")
NOTIFY_LOG = os.environ["E2E_NOTIFY_LOG"]
SIM_PID = int(os.environ["E2E_SIM_PID"])
SIM_LINK = os.environ["E2E_SIM_LINK"]
WAIT = 120


def notifications():
    """The Notify calls on the session bus, in order, from dbus-monitor's record: each a dict
    with app, replaces, summary, body, actions, urgency, timeout and id (the server's answer)."""
    import re

    calls, returns, cur, section = [], {}, None, None
    ret_key = None
    for line in open(NOTIFY_LOG, encoding="utf-8", errors="replace"):
        if not line.startswith(" "):
            cur, ret_key, section = None, None, None
            m = re.search(r"sender=(\S+) -> destination=\S+ serial=(\d+) .*member=Notify$", line.strip())
            if line.startswith("method call") and m:
                cur = {"key": (m.group(1), m.group(2)), "strings": [], "uints": [], "actions": [], "urgency": None, "timeout": None}
                calls.append(cur)
            m = re.search(r"sender=\S+ -> destination=(\S+) serial=\d+ reply_serial=(\d+)", line)
            if line.startswith("method return") and m:
                ret_key = (m.group(1), m.group(2))
            continue
        t = line.strip()
        if ret_key and t.startswith("uint32 "):
            returns[ret_key] = int(t.split()[1])
            continue
        if cur is None:
            continue
        if t.startswith("array ["):
            section = "actions" if section is None else "hints"
        elif t.startswith("string ") and section == "actions":
            cur["actions"].append(json.loads(t[7:]))
        elif t.startswith("string ") and section is None:
            cur["strings"].append(json.loads(t[7:]))
        elif t.startswith("uint32 ") and section is None:
            cur["uints"].append(int(t.split()[1]))
        elif "byte" in t and section == "hints" and cur.get("_hint") == "urgency":
            cur["urgency"] = int(t.split()[-1])
        elif t.startswith("string ") and section == "hints":
            cur["_hint"] = json.loads(t[7:])
        elif t.startswith("int32 ") and section == "hints":
            cur["timeout"] = int(t.split()[1])
    out = []
    for c in calls:
        if len(c["strings"]) < 4:
            continue
        app, _icon, summary, body = c["strings"][:4]
        out.append({"app": app, "replaces": c["uints"][0] if c["uints"] else 0, "summary": summary, "body": body,
                    "actions": c["actions"], "urgency": c["urgency"], "timeout": c["timeout"], "id": returns.get(c["key"])})
    return [n for n in out if n["app"] == "HIS Bridge"]


def closed_ids():
    """The ids of notifications the server reported closed (expired, dismissed or clicked)."""
    ids, want = set(), False
    for line in open(NOTIFY_LOG, encoding="utf-8", errors="replace"):
        if not line.startswith(" "):
            want = line.startswith("signal") and "member=NotificationClosed" in line
        elif want and line.strip().startswith("uint32 "):
            ids.add(int(line.split()[1]))
            want = False
    return ids


def notified(what, pred, after=0):
    """Waits for a notification of the app (after the first `after` of them) that `pred` accepts."""
    start = time.time()
    while True:
        found = [n for n in notifications()[after:] if pred(n)]
        if found and found[-1]["id"] is not None:
            return found[-1]
        if time.time() - start > WAIT:
            raise AssertionError(f"no notification: {what}; the app's were: {notifications()[after:]}")
        time.sleep(0.2)


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(DRIVER + path, data=data, method=method, headers={"Content-Type": "application/json"})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(req, timeout=WAIT) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}") from None
        except (ConnectionError, http.client.RemoteDisconnected) as e:
            # The driver pair sometimes drops a connection while the page handles an event.
            print(f"tray e2e: {method} {path}: {e!r}, retrying", file=sys.stderr)
            time.sleep(0.5)
    raise RuntimeError(f"{method} {path}: the driver closed the connection three times")


class Session:
    def __init__(self):
        caps = {"capabilities": {"alwaysMatch": {"tauri:options": {"application": APP, "args": ["--config", CFG, "--open"]}}}}
        v = call("POST", "/session", caps)
        self.id = v["sessionId"]

    def p(self, path):
        return f"/session/{self.id}{path}"

    def js(self, script, *args):
        return call("POST", self.p("/execute/sync"), {"script": script, "args": list(args)})

    def find(self, css):
        v = call("POST", self.p("/element"), {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def click(self, css):
        call("POST", self.p(f"/element/{self.find(css)}/click"), {})

    def type(self, css, value):
        el = self.find(css)
        call("POST", self.p(f"/element/{el}/clear"), {})
        call("POST", self.p(f"/element/{el}/value"), {"text": value})

    def shot(self, name):
        png = base64.b64decode(call("GET", self.p("/screenshot")))
        os.makedirs(SHOTS, exist_ok=True)
        with open(os.path.join(SHOTS, name), "wb") as f:
            f.write(png)

    def until(self, what, fn):
        start = time.time()
        while True:
            v = fn()
            if v:
                return v
            if time.time() - start > WAIT:
                self.shot("timeout.png")
                raise AssertionError(f"timed out waiting for: {what}")
            time.sleep(0.2)

    def close(self):
        try:
            call("DELETE", self.p(""))
        except Exception:
            pass


def pay(order, amount, check=False):
    """The HIS sends an order through `hisbridge his send` and waits for its result."""
    subprocess.run(
        [HISBRIDGE, "his", "send", "--config", CFG, "--terminal", "W01", "--order", order, "--amount", amount, "--wait", "90"],
        stdout=subprocess.DEVNULL,
        check=check,
    )


SIMS = []  # simulators started here (the POS back after a loss), stopped at the end


def main():
    try:
        run()
    finally:
        for p in SIMS:
            p.terminate()


def run():
    s = Session()
    failures = []

    def check(name, fn):
        try:
            fn()
            print(f"tray e2e: {name}: ok")
        except Exception as e:  # report every check, then fail
            failures.append(name)
            import traceback

            traceback.print_exc()
            print(f"tray e2e: {name}: FAILED: {e}")
            try:
                s.shot(name.replace(" ", "-") + ".png")
            except Exception:
                pass

    def paid_order_shows():
        s.until("dashboard loaded", lambda: s.text("#totals h2") == "当日汇总")
        s.until("POS ready", lambda: s.js("return document.getElementById('state').className") == "state ready")
        his = subprocess.Popen(
            [HISBRIDGE, "his", "send", "--config", CFG, "--terminal", "W01", "--order", "E2E0001", "--amount", "+12.30", "--wait", "90"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        s.until("the order appears", lambda: s.text('tr[data-order="E2E0001"]'))
        s.until("the order turns paid", lambda: s.text('tr[data-order="E2E0001"] td.status') == "成功")
        out = his.communicate(timeout=WAIT)[0].decode()
        assert '"status": "SUCCESS"' in out, out
        row = s.text('tr[data-order="E2E0001"]')
        assert "¥12.30" in row and "微信" in row, row
        s.until("the last payment says paid", lambda: "¥12.30 微信 收款成功" in (s.text("#last") or ""))
        s.until("totals updated", lambda: "12.30" in (s.text("#totals-body") or ""))
        s.shot("dashboard-paid.png")
        s.js("document.getElementById('chart-card').scrollIntoView()")
        s.shot("dashboard-chart.png")
        s.js("window.scrollTo(0, 0)")

    def failed_order_shows():
        pay("E2E0002", "+3.91")
        s.until("the order turns failed", lambda: s.text('tr[data-order="E2E0002"] td.status') == "失败")
        s.until("the cashier is told why", lambda: "E2E0002" in (s.text("#last") or ""))
        note = s.text("#last")
        assert "¥3.91 未收到" in note and "付款码无效" in note, f"the wallet's reason in words: {note}"
        assert "请患者" in note, f"what to tell the patient: {note}"
        assert s.js("return document.getElementById('last').dataset.state") == "bad"
        s.shot("dashboard-failed.png")

    def a_success_after_a_decline_shows_no_failure():
        pay("E2E0004", "+1.00", check=True)
        s.until("the last payment is the new one", lambda: "E2E0004" in (s.text("#last") or ""))
        assert s.js("return document.getElementById('last').dataset.state") == "ok"
        top = s.js("const t = document.getElementById('top'); return [...t.querySelectorAll('*')].filter(e => e.offsetParent !== null).map(e => e.textContent).join(' ')")
        assert "失败" not in top and "未收到" not in top, f"a failure still shown after a success: {top}"

    def a_timeout_is_told_with_its_reason():
        pay("E2E0005", "+2.94")
        s.until("the timeout is shown", lambda: "E2E0005" in (s.text("#last") or ""))
        note = s.text("#last")
        assert "已取消" in note and "未在规定时间内付款" in note and "未扣款" in note, note
        s.until("the row says cancelled", lambda: s.text('tr[data-order="E2E0005"] td.status') == "已取消")
        s.shot("dashboard-timeout.png")

    def dialog(title):
        """The native dialog's X window, by its title (xdotool; no window manager needed)."""
        start = time.time()
        while time.time() - start < WAIT:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title], capture_output=True, text=True)
            ids = r.stdout.split()
            if ids:
                return ids[-1]
            time.sleep(0.2)
        raise AssertionError(f"no dialog titled {title}")

    def dialog_text(win):
        # GTK draws the text itself; what can be checked from outside is the title and that it
        # is a separate, visible top-level window. The message is checked by the command layer.
        return subprocess.run(["xdotool", "getwindowname", win], capture_output=True, text=True).stdout.strip()

    def answer(win, key):
        subprocess.run(["xdotool", "windowfocus", "--sync", win], check=True)
        subprocess.run(["xdotool", "key", "--clearmodifiers", key], check=True)
        start = time.time()
        while subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^撤销订单$"], capture_output=True).stdout.strip():
            if time.time() - start > 10:
                raise AssertionError(f"the dialog did not close on {key}")
            time.sleep(0.2)

    def the_cashiers_cancel_asks_first():
        import threading

        # +2.96: the patient starts paying and never finishes; only a cancel ends it.
        t = threading.Thread(target=pay, args=("E2E0096", "+2.96"))
        t.start()
        button = 'tr[data-order="E2E0096"] button[data-action="cancel"]'
        s.until("the order is at the POS with its cancel button", lambda: s.js("return !!document.querySelector(arguments[0])", button))
        s.click(button)
        win = dialog("^撤销订单$")
        assert dialog_text(win) == "撤销订单", dialog_text(win)
        answer(win, "Escape")
        time.sleep(1.5)
        assert s.text('tr[data-order="E2E0096"] td.status') != "已取消", "Escape (不撤销) cancelled the order"
        assert s.js("return !!document.querySelector(arguments[0])", button), "the order is still open"
        s.click(button)
        win = dialog("^撤销订单$")
        answer(win, "Return")
        s.until("the cashier's cancel went through", lambda: s.text('tr[data-order="E2E0096"] td.status') == "已取消")
        # The strip tells the outcome; the action's notice ("正在撤销") does not stay to contradict it.
        s.until("the strip shows the cancel", lambda: "已取消" in (s.text("#last-headline") or ""))
        # (well before the 8 s an ordinary notice lasts)
        start = time.time()
        while not s.js("return document.getElementById('notice').hidden"):
            assert time.time() - start < 3, f"the notice stayed: {s.text('#notice-text')!r}"
            time.sleep(0.2)
        t.join(timeout=WAIT)

    def notifications_tell_stay_replace_and_open():
        # The timeout above: notified with its reason, as an ordinary notice that goes by itself.
        n = notified("the timeout", lambda n: "E2E0005" in n["body"])
        assert n["summary"] == "交易已取消" and "未在规定时间内付款" in n["body"], n
        assert n["urgency"] == 1 and "default" in n["actions"], n
        # A click on an order's notice opens the dashboard at that order, from another page.
        subprocess.run(["dunstctl", "close-all"], check=True)
        s.js("location.hash = '#settings'")
        pay("E2E0006", "+3.91")
        n = notified("the decline", lambda n: "E2E0006" in n["body"])
        assert n["summary"] == "收款失败" and "请患者" in n["body"], n
        s.until("the notice on screen", lambda: subprocess.run(["dunstctl", "count", "displayed"], capture_output=True, text=True).stdout.strip() == "1")
        subprocess.run(["dunstctl", "action", "0"], check=True)
        s.until("the order opened", lambda: s.js("const r = document.querySelector('#orders tr.focus'); return r && r.dataset.order"))
        assert s.js("return document.querySelector('#orders tr.focus').dataset.order") == "E2E0006"
        assert not s.js("return document.getElementById('view-day').hidden"), "the day's page is shown"
        s.shot("dashboard-opened-from-notice.png")
        # The POS lost: a critical notice without expiry, still there after ordinary ones went.
        before = len(notifications())
        os.kill(SIM_PID, 15)
        lost = notified("the POS lost", lambda n: n["summary"] == "POS 已断开", before)
        assert lost["urgency"] == 2 and lost["timeout"] == 0, lost
        time.sleep(4)  # dunst's ordinary notices expire after 2 s here
        assert lost["id"] not in closed_ids(), "the POS-lost notice went away by itself"
        # The POS back: its notice takes the lost one's place.
        SIMS.append(subprocess.Popen([HISBRIDGE, "sim-pos", "--link", SIM_LINK], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        back = notified("the POS back", lambda n: n["summary"] == "POS 已连接", before)
        assert back["replaces"] == lost["id"], f"the POS-back notice did not replace the lost one: {lost} {back}"
        s.until("ready again", lambda: s.js("return document.getElementById('state').className") == "state ready")
        s.js("location.hash = ''")

    def the_day_follows_the_clock():
        # Another day chosen: the dashboard says it shows history; 今日 brings today back.
        s.js("const d = document.getElementById('date'); d.value = '2020-01-02'; d.dispatchEvent(new Event('change'))")
        s.until("history shown", lambda: s.js("return !document.getElementById('history').hidden"))
        assert "2020-01-02" in s.text("#history")
        s.until("the old day is empty", lambda: not s.text('tr[data-order="E2E0001"]'))
        s.click("#back-today")
        s.until("today again", lambda: s.text('tr[data-order="E2E0001"]'))
        assert s.js("return document.getElementById('history').hidden")
        # A simulated midnight: the clock moves to tomorrow, the day with it (and no order there).
        s.js("const n = new Date(); const m = new Date(n); m.setHours(24, 0, 5, 0); window.hbClockOffset = m - n; window.hbTick()")
        s.until("the day rolled over", lambda: s.js("return document.getElementById('date').value") != s.js("const n = new Date(); return new Date(n - n.getTimezoneOffset() * 60000).toISOString().slice(0, 10)"))
        s.until("yesterday's orders gone", lambda: not s.text('tr[data-order="E2E0001"]'))
        assert s.js("return document.getElementById('history').hidden"), "following today is not history"
        s.js("window.hbClockOffset = 0; window.hbTick()")
        s.until("back", lambda: s.text('tr[data-order="E2E0001"]'))

    def pause_toggles():
        assert s.text("#pause") == "暂停收款"
        s.click("#pause")
        s.until("paused", lambda: s.text("#pause") == "恢复收款")
        s.until("the pill says paused", lambda: s.text("#state") == "已暂停收款")
        s.click("#pause")
        s.until("resumed", lambda: s.text("#pause") == "暂停收款")
        s.until("ready again", lambda: s.js("return document.getElementById('state').className") == "state ready")

    def a_short_window_shows_the_orders_first():
        # 150% scaling on a 1366x768 screen leaves the page about 800x440 CSS pixels: the day's
        # orders come right below the last-payment strip (open items before them), and the
        # newest order is on screen without scrolling.
        win = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^HIS Bridge$"], capture_output=True, text=True).stdout.split()
        assert win, "no dashboard window"
        size = s.js("return [window.outerWidth, window.outerHeight]")
        subprocess.run(["xdotool", "windowsize", "--sync", win[-1], "800", "440"], check=True)
        try:
            s.until("the window is short", lambda: s.js("return window.innerHeight") <= 460)
            s.js("window.scrollTo(0, 0)")
            at = s.js("""
                const r = (q) => { const e = document.querySelector(q); return e && e.offsetParent !== null ? e.getBoundingClientRect() : null; };
                const row = r('#orders-body tr'), top = r('#top'), open = r('#open-card'), totals = r('#totals');
                return { h: window.innerHeight, row: row && [row.top, row.bottom], top: top.bottom,
                         open: open && open.top, orders: r('#orders').top, totals: totals.top };""")
            # The longest state the pill says (the POS lost), as the next status update would.
            s.js("document.getElementById('state').textContent = '找不到 COM3，请检查 USB 线和 POS 电源；正在重试'")
            rows = s.js("return [...document.querySelectorAll('header > *')].filter((e) => e.offsetParent !== null).map((e) => Math.round(e.getBoundingClientRect().top + e.getBoundingClientRect().height / 2))")
            assert max(rows) - min(rows) < 12, f"the header broke into lines: {rows}"
            s.until("the pill told again", lambda: s.js("return document.getElementById('state').title") == s.text("#state"))
            assert at["row"], f"no order row: {at}"
            assert at["top"] <= at["row"][0] and at["row"][1] <= at["h"], f"the newest order is not on screen: {at}"
            assert at["orders"] < at["totals"], f"the totals come before the orders: {at}"
            if at["open"] is not None:
                assert at["open"] < at["orders"], f"open items below the orders: {at}"
            s.shot("short-window.png")
        finally:
            subprocess.run(["xdotool", "windowsize", "--sync", win[-1], str(size[0]), str(size[1])])
        s.until("the window is back", lambda: s.js("return window.innerHeight") > 460)

    def logs_filter_and_search():
        s.js("location.hash = '#logs'")
        s.until("the log loaded", lambda: len(s.text("#log") or "") > 0)
        s.js("const l = document.getElementById('log-level'); l.value = 'warn'; l.dispatchEvent(new Event('change'))")
        lines = [l for l in (s.text("#log") or "").split("\n") if l.strip()]
        assert all(("WARN" in l or "ERROR" in l) for l in lines), f"a line below the level: {lines[:5]}"
        s.js("const l = document.getElementById('log-level'); l.value = 'all'; l.dispatchEvent(new Event('change'))")
        s.type("#log-search", "settings saved")
        lines = [l for l in (s.text("#log") or "").split("\n") if l.strip()]
        assert all("settings saved" in l.lower() for l in lines), f"search: {lines[:5]}"
        s.js("location.hash = ''")

    def chinese_throughout():
        # Every visible text in zh-CN mode is Chinese, apart from order and payment numbers,
        # amounts, times and a few names (POS, HIS, USB, COM).
        import re
        texts = s.js("""
            const out = [];
            const walk = (n) => {
              if (n.nodeType === 3) { const p = n.parentElement; if (p && p.offsetParent !== null && n.textContent.trim()) out.push(n.textContent.trim()); return; }
              if (n.nodeType === 1 && getComputedStyle(n).display === 'none') return;
              n.childNodes.forEach(walk);
            };
            walk(document.body);
            return out;""")
        allowed = {"POS", "HIS", "USB", "COM", "HIS Bridge", "English", "Bridge", "WebKit", "ID"}
        bad = []
        for text in texts:
            if "/" in text or "\\" in text:
                continue  # a folder or port path is the machine's, not ours to translate
            for word in re.findall(r"[A-Za-z]{2,}", text):
                if word in allowed or re.match(r"^(E2E|POS|MZ|W)\d*", word):
                    continue
                bad.append(f"{word!r} in {text!r}")
        assert not bad, "English words in the Chinese interface: " + "; ".join(bad[:20])

    def language_switch():
        s.click("#lang")
        s.until("English", lambda: s.text("#totals h2") == "Today's totals")
        assert s.text('tr[data-order="E2E0001"] td.status') == "Paid"
        assert s.js("return document.documentElement.lang") == "en"
        s.click("#lang")
        s.until("back to Chinese", lambda: s.text("#totals h2") == "当日汇总")

    def settings_are_guarded_by_the_it_password():
        # IT sets a password (its hash goes into the config); the running app asks for it.
        pw = os.path.join(os.path.dirname(CFG), "it-password.txt")
        with open(pw, "w", encoding="utf-8") as f:
            f.write("Xinxike-2026\n")
        subprocess.run([HISBRIDGE, "it-password", "--config", CFG, "--password-file", pw], check=True, stdout=subprocess.DEVNULL)
        os.remove(pw)
        text = open(CFG, encoding="utf-8").read()
        assert "$argon2id$" in text and "Xinxike" not in text, "the config holds the hash only"
        try:
            s.js("location.hash = '#settings'")
            s.until("the lock is shown", lambda: s.js("return !document.getElementById('unlock-form').hidden"))
            assert s.js("return document.forms['settings-form'].elements.device_id.disabled"), "the form is open while locked"
            assert s.js("return document.getElementById('key-file').disabled")
            s.shot("settings-locked.png")
            # The lock is the app's, not only the page's: a save sent round the page is refused.
            refused = s.js("""return window.__TAURI__.core.invoke('get_settings').then((f) => window.__TAURI__.core.invoke('save_settings', { form: f }))
                  .then(() => 'saved', (e) => e.message_zh || e.message || String(e));""")
            assert refused and "锁定" in refused, f"a locked save was not refused: {refused!r}"
            s.type("#it-password", "guess-1234")
            s.click("#unlock")
            msg = s.until("a wrong password is told", lambda: s.text("#unlock-error"))
            assert msg.startswith("密码不对，还可以再试 4 次"), msg
            assert s.js("return document.forms['settings-form'].elements.device_id.disabled")
            s.type("#it-password", "Xinxike-2026")
            s.click("#unlock")
            s.until("unlocked", lambda: s.js("return !document.getElementById('unlocked').hidden"))
            assert not s.js("return document.forms['settings-form'].elements.device_id.disabled"), "still read-only"
            s.click("#save-settings")
            s.until("saved", lambda: (s.text("#notice-text") or "").startswith("已保存"))
            assert "$argon2id$" in open(CFG, encoding="utf-8").read(), "a save dropped the IT password"
            s.js("window.scrollTo(0, 0)")  # the lock's line is under the sticky header after the save
            s.shot("settings-unlocked.png")
            s.click("#relock")
            s.until("locked again", lambda: s.js("return !document.getElementById('unlock-form').hidden"))
            assert s.js("return document.forms['settings-form'].elements.device_id.disabled")
            # Leaving the page locks too.
            s.type("#it-password", "Xinxike-2026")
            s.click("#unlock")
            s.until("unlocked again", lambda: s.js("return !document.getElementById('unlocked').hidden"))
            s.js("location.hash = ''")
            s.until("the day", lambda: s.js("return !document.getElementById('view-day').hidden"))
            s.js("location.hash = '#settings'")
            s.until("locked on return", lambda: s.js("return !document.getElementById('unlock-form').hidden"))
        finally:
            subprocess.run([HISBRIDGE, "it-password", "--config", CFG, "--clear"], check=True, stdout=subprocess.DEVNULL)
            s.js("location.hash = ''")

    def settings_error_shown():
        s.js("location.hash = '#settings'")
        s.until("settings loaded", lambda: s.js("return document.forms[0].elements.device_id.value") == "POS-0001")
        before = open(CFG, encoding="utf-8").read()
        s.type('input[name="device_id"]', "POS 0001")
        s.click("#save-settings")
        msg = s.until("the error is shown", lambda: s.text("#settings-error"))
        assert msg.startswith("设备号："), msg
        assert s.js("return document.forms[0].elements.device_id.classList.contains('invalid')"), "field marked"
        s.shot("settings-error.png")
        assert open(CFG, encoding="utf-8").read() == before, "nothing saved"
        s.type('input[name="device_id"]', "POS-0001")
        s.type('input[name="scan_secs"]', "0")
        s.click("#save-settings")
        s.until("the next error", lambda: (s.text("#settings-error") or "").startswith("等待扫码："))
        s.js("location.hash = ''")

    def second_launch_exits():
        env = dict(os.environ)
        p = subprocess.run([APP, "--config", CFG], env=env, timeout=60, capture_output=True)
        assert p.returncode == 0, p
        assert s.text("#totals h2"), "the first instance still answers"

    check("an order dropped in the inbox appears and turns paid", paid_order_shows)
    check("a failed payment is shown in the last-payment strip", failed_order_shows)
    check("a success after a decline leaves no failure shown", a_success_after_a_decline_shows_no_failure)
    check("a timeout is told with its reason", a_timeout_is_told_with_its_reason)
    check("notifications tell, stay, replace one another and open the order", notifications_tell_stay_replace_and_open)
    check("the cashier's cancel asks first, in a native dialog naming order and amount", the_cashiers_cancel_asks_first)
    check("the day follows the clock and history is marked", the_day_follows_the_clock)
    check("pause toggles and says so", pause_toggles)
    check("every visible string in the Chinese interface is Chinese", chinese_throughout)
    check("the language switch works", language_switch)
    check("the settings are guarded by the IT password", settings_are_guarded_by_the_it_password)
    check("a settings error is shown next to its field", settings_error_shown)
    check("a short window (150% scaling) shows the orders first", a_short_window_shows_the_orders_first)
    check("a second launch exits and the first stays", second_launch_exits)
    check("the log filters by level and searches", logs_filter_and_search)
    s.close()

    def status_only_beside_the_service():
        # `hisbridge run` stands in for the Windows service: it holds the journal, the tray app
        # shows its status only and still lists the day's orders.
        # The app of the checks above may take a moment to exit and free the journal.
        status = os.path.join(os.path.dirname(CFG), "status.json")
        deadline = time.time() + WAIT
        while True:
            svc = subprocess.Popen([HISBRIDGE, "run", "--config", CFG], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                svc.wait(timeout=3)  # exited: the journal is still held
                assert time.time() < deadline, "the journal was never free for the service"
            except subprocess.TimeoutExpired:
                break
        try:
            def published():
                try:
                    st = json.load(open(status))
                except (OSError, ValueError):
                    return False
                return st["pid"] == svc.pid and st["link"] == "ready"
            while not published():
                assert time.time() < deadline, "the service never published a ready link"
                time.sleep(0.2)
            t = Session()
            try:
                t.until("dashboard loaded", lambda: t.text("#totals h2") == "当日汇总")
                t.until("service note shown", lambda: t.js("return !document.getElementById('service-note').hidden"))
                t.until("the service's status", lambda: (t.text("#state") or "").startswith("服务运行中"))
                pay("E2E0003", "+2.00", check=True)
                t.until("the service's order listed", lambda: t.text('tr[data-order="E2E0003"] td.status') == "成功")
                t.until("the service's last payment shown", lambda: "¥2.00" in (t.text("#last") or "") and "E2E0003" in (t.text("#last") or ""))
                t.shot("dashboard-service-mode.png")
                # The service's orders notify as the app's own do.
                pay("E2E0007", "+3.91")
                n = notified("the service's decline", lambda n: "E2E0007" in n["body"])
                assert n["summary"] == "收款失败", n
                # Settings saved beside the service say they wait for its restart.
                t.js("location.hash = '#settings'")
                t.until("settings loaded", lambda: t.js("return document.forms[0].elements.device_id.value") == "POS-0001")
                t.click("#save-settings")
                t.until("saved for the service", lambda: "服务重启后生效" in (t.text("#notice") or ""))
                t.js("location.hash = ''")
            finally:
                t.close()
        finally:
            svc.terminate()
            svc.wait(timeout=30)

    check("beside the service the app shows status only", status_only_beside_the_service)
    if failures:
        sys.exit(f"tray e2e: {len(failures)} failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
