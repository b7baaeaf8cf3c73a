#!/usr/bin/env python3
"""HIS Bridge sample client in Python (docs/his-interface.md): both channels, both directions.

Needs only `cryptography` (pip install cryptography).

    python3 hisbridge_client.py vectors ../../docs/test-vectors.json
    python3 hisbridge_client.py selftest --key hisbridge.key --inbox IN --outbox OUT [--port 9817]
"""
import base64, datetime, json, os, socket, sys, time
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FINAL = {"SUCCESS", "REFUNDED", "FAILED", "CANCELLED", "REVERSED", "REJECTED"}


def load_key(path):
    """The key file: key_id = "..." and key = "<base64>" lines."""
    fields = {}
    for line in open(path, encoding="utf-8"):
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            fields[k.strip()] = v.strip().strip('"')
    return fields["key_id"], base64.b64decode(fields["key"])


def seal(key, key_id, kind, text):
    header = f"HB1.{key_id}.{kind}"
    nonce = os.urandom(12)                                   # fresh for every message
    body = AESGCM(key).encrypt(nonce, text.encode("utf-8"), header.encode("ascii"))
    return header + "." + base64.b64encode(nonce + body).decode("ascii")


def open_(key, key_id, kind, envelope):
    header, body = envelope.strip().rsplit(".", 1)
    if header != f"HB1.{key_id}.{kind}":
        raise ValueError(f"unexpected header {header}")
    raw = base64.b64decode(body)
    return AESGCM(key).decrypt(raw[:12], raw[12:], header.encode("ascii")).decode("utf-8")


def instruction(kind, terminal, order_no, amount=None, refund_no=None):
    msg = {"v": 1, "type": kind, "terminal_id": terminal, "order_no": order_no,
           "sent_at": datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")}
    if amount is not None:
        msg["amount"] = amount
    if refund_no is not None:
        msg["refund_no"] = refund_no
    return json.dumps(msg, ensure_ascii=False)


class FolderClient:
    def __init__(self, key_file, inbox, outbox):
        self.key_id, self.key = load_key(key_file)
        self.inbox, self.outbox = inbox, outbox

    def send(self, msg):
        stem = json.loads(msg)["order_no"] + "-" + datetime.datetime.now().strftime("%Y%m%d%H%M%S%f")
        tmp = os.path.join(self.inbox, stem + ".ord.tmp")
        with open(tmp, "w", encoding="ascii") as f:          # temp name, then rename
            f.write(seal(self.key, self.key_id, "ORD", msg))
        os.replace(tmp, os.path.join(self.inbox, stem + ".ord"))
        return stem

    def call(self, msg, timeout=60):
        return self.wait(self.send(msg), timeout)

    def wait(self, stem, timeout=60):
        res = os.path.join(self.outbox, stem + ".res")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(res):
                result = json.loads(open_(self.key, self.key_id, "RES", open(res, encoding="ascii").read()))
                if result["status"] in FINAL:
                    os.remove(res)                           # the result file is ours once final
                    return result
            time.sleep(0.2)
        raise TimeoutError("no final result yet: do not charge again; query later")


class SocketClient:
    def __init__(self, key_file, port):
        self.key_id, self.key = load_key(key_file)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rwb")

    def send(self, msg):
        self.file.write(seal(self.key, self.key_id, "ORD", msg).encode("ascii") + b"\n")
        self.file.flush()
        return msg

    def call(self, msg, timeout=60):
        return self.wait(self.send(msg), timeout)

    def wait(self, msg, timeout=60):
        want = json.loads(msg)
        self.sock.settimeout(timeout)
        for line in self.file:                              # PROCESSING ... then final
            result = json.loads(open_(self.key, self.key_id, "RES", line.decode("ascii")))
            mine = result.get("order_no") in (None, want["order_no"]) and result.get("refund_no") == want.get("refund_no")
            if mine and result["status"] in FINAL:
                return result
        raise ConnectionError("connection closed")


def check_vectors(path):
    for v in json.load(open(path, encoding="utf-8"))["vectors"]:
        key = bytes.fromhex(v["key_hex"])
        kind = v["direction"]
        assert open_(key, v["key_id"], kind, v["envelope"]) == v["plaintext"], v["name"]
        raw = base64.b64decode(v["envelope"].rsplit(".", 1)[1])
        again = AESGCM(key).encrypt(raw[:12], v["plaintext"].encode(), v["aad"].encode())
        assert raw[12:] == again, v["name"]
    print("python: test vectors ok")


def selftest(key_file, inbox, outbox, port):
    run = datetime.datetime.now().strftime("%H%M%S%f")
    channels = [("folder", FolderClient(key_file, inbox, outbox))]
    if port:
        channels.append(("socket", SocketClient(key_file, port)))
    for name, c in channels:
        order = f"PY{name[0].upper()}{run}"
        r = c.call(instruction("order", "W01", order, "+12.30"))
        assert r["status"] == "SUCCESS" and r["channel"] == "WECHAT" and r["device_id"], r
        assert r["pay_order_no"], r
        r = c.call(instruction("order", "W01", order, "-2.30", refund_no="R1"))
        assert r["status"] == "REFUNDED", r
        r = c.call(instruction("query", "W01", order))
        assert r["status"] == "SUCCESS", r
        r = c.call(instruction("cancel", "W01", order))
        assert r["status"] == "SUCCESS", r                   # finished: cancel changes nothing
        r = c.call(instruction("order", "W01", order + "X", "+1.91"))
        assert r["status"] == "FAILED" and r["error_code"] == "E_PAYMENT_DECLINED", r
        # The patient walks away (.94: never scans); the cashier cancels the running payment.
        pending = c.send(instruction("order", "W01", order + "W", "+5.94"))
        time.sleep(0.5)
        canceller = SocketClient(key_file, port) if name == "socket" else c
        r = canceller.call(instruction("cancel", "W01", order + "W"))
        assert r["status"] == "CANCELLED", r
        r = c.wait(pending)
        assert r["status"] == "CANCELLED" and r["error_code"] == "E_CANCELLED", r
        print(f"python {name}: pay, refund, query, cancel (finished and running), declined: ok")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["vectors"]:
        check_vectors(args[1])
    elif args[:1] == ["selftest"]:
        opts = dict(zip(args[1::2], args[2::2]))
        selftest(opts["--key"], opts["--inbox"], opts["--outbox"], int(opts.get("--port", 0)))
    else:
        print(__doc__)
        sys.exit(2)
