#!/usr/bin/env python3
"""Checks docs/test-vectors.json with an independent AES-GCM implementation (Python
`cryptography`): what an HIS written in another language will compute."""
import base64, json, os, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "test-vectors.json")
vectors = json.load(open(path, encoding="utf-8"))["vectors"]
for v in vectors:
    key = bytes.fromhex(v["key_hex"])
    header, body = v["envelope"].rsplit(".", 1)
    assert header == v["aad"], v["name"]
    raw = base64.b64decode(body)
    assert raw[:12].hex() == v["nonce_hex"], v["name"]
    assert AESGCM(key).decrypt(raw[:12], raw[12:], header.encode("ascii")).decode("utf-8") == v["plaintext"], v["name"]
    again = AESGCM(key).encrypt(raw[:12], v["plaintext"].encode("utf-8"), v["aad"].encode("ascii"))
    assert base64.b64encode(raw[:12] + again).decode() == body, v["name"]
print(f"{len(vectors)} passed, 0 failed")
