// HIS Bridge sample client in Java, JDK only (docs/his-interface.md): both channels.
//
//   java HisBridgeClient.java vectors ../../docs/test-vectors.json
//   java HisBridgeClient.java selftest KEYFILE INBOX OUTBOX [PORT]
import java.io.*;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.security.SecureRandom;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.util.*;
import java.util.regex.*;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public class HisBridgeClient {
    static final Set<String> FINAL = Set.of("SUCCESS", "REFUNDED", "FAILED", "CANCELLED", "REVERSED", "REJECTED");
    static final SecureRandom RANDOM = new SecureRandom();

    final String keyId;
    final byte[] key;

    HisBridgeClient(Path keyFile) throws IOException {
        Map<String, String> f = new HashMap<>();
        for (String line : Files.readAllLines(keyFile, StandardCharsets.UTF_8)) {
            int i = line.indexOf('=');
            if (i > 0 && !line.trim().startsWith("#")) f.put(line.substring(0, i).trim(), line.substring(i + 1).trim().replace("\"", ""));
        }
        keyId = f.get("key_id");
        key = Base64.getDecoder().decode(f.get("key"));
    }

    static byte[] gcm(int mode, byte[] key, byte[] nonce, String aad, byte[] data) throws Exception {
        Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
        c.init(mode, new SecretKeySpec(key, "AES"), new GCMParameterSpec(128, nonce));
        c.updateAAD(aad.getBytes(StandardCharsets.US_ASCII));
        return c.doFinal(data);
    }

    String seal(String kind, String json) throws Exception {
        String header = "HB1." + keyId + "." + kind;
        byte[] nonce = new byte[12];
        RANDOM.nextBytes(nonce);                                   // fresh for every message
        byte[] body = gcm(Cipher.ENCRYPT_MODE, key, nonce, header, json.getBytes(StandardCharsets.UTF_8));
        byte[] all = new byte[12 + body.length];
        System.arraycopy(nonce, 0, all, 0, 12);
        System.arraycopy(body, 0, all, 12, body.length);
        return header + "." + Base64.getEncoder().encodeToString(all);
    }

    static String open(byte[] key, String keyId, String kind, String envelope) throws Exception {
        String env = envelope.trim();
        int dot = env.lastIndexOf('.');
        String header = env.substring(0, dot);
        if (!header.equals("HB1." + keyId + "." + kind)) throw new IOException("unexpected header " + header);
        byte[] raw = Base64.getDecoder().decode(env.substring(dot + 1));
        byte[] plain = gcm(Cipher.DECRYPT_MODE, key, Arrays.copyOf(raw, 12), header, Arrays.copyOfRange(raw, 12, raw.length));
        return new String(plain, StandardCharsets.UTF_8);
    }

    /** A string field of a flat JSON object, or null. Enough for the result message. */
    static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*(null|\"((?:[^\"\\\\]|\\\\.)*)\")").matcher(json);
        return m.find() && m.group(2) != null ? m.group(2) : null;
    }

    static String instruction(String type, String terminal, String orderNo, String amount, String refundNo) {
        StringBuilder b = new StringBuilder("{\"v\":1,\"type\":\"" + type + "\",\"terminal_id\":\"" + terminal
                + "\",\"order_no\":\"" + orderNo + "\",\"sent_at\":\"" + OffsetDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME) + "\"");
        if (amount != null) b.append(",\"amount\":\"").append(amount).append('"');
        if (refundNo != null) b.append(",\"refund_no\":\"").append(refundNo).append('"');
        return b.append('}').toString();
    }

    /** Drop folder: write under a temp name, rename into place; returns the file stem. */
    String sendFolder(Path inbox, String json) throws Exception {
        String stem = field(json, "order_no") + "-" + System.nanoTime();
        Path tmp = inbox.resolve(stem + ".ord.tmp");
        Files.writeString(tmp, seal("ORD", json), StandardCharsets.US_ASCII);
        Files.move(tmp, inbox.resolve(stem + ".ord"), StandardCopyOption.ATOMIC_MOVE);
        return stem;
    }

    String callFolder(Path inbox, Path outbox, String json) throws Exception {
        return waitFolder(outbox, sendFolder(inbox, json));
    }

    /** Poll for the final result, then remove the file (it is the HIS's once final). */
    String waitFolder(Path outbox, String stem) throws Exception {
        Path res = outbox.resolve(stem + ".res");
        for (long end = System.currentTimeMillis() + 60_000; System.currentTimeMillis() < end; Thread.sleep(200)) {
            if (Files.exists(res)) {
                String r = open(key, keyId, "RES", Files.readString(res, StandardCharsets.US_ASCII));
                if (FINAL.contains(field(r, "status"))) {
                    Files.delete(res);
                    return r;
                }
            }
        }
        throw new IOException("no final result yet: do not charge again; query later");
    }

    /** Socket: one envelope per line; read until this order's final result. */
    String callSocket(int port, String json) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(60_000);
            Writer w = new OutputStreamWriter(s.getOutputStream(), StandardCharsets.US_ASCII);
            w.write(seal("ORD", json) + "\n");
            w.flush();
            BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            for (String line; (line = r.readLine()) != null; ) {
                String res = open(key, keyId, "RES", line);
                if (FINAL.contains(field(res, "status"))) return res;
            }
            throw new IOException("connection closed");
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] a) throws Exception {
        if (a.length == 2 && a[0].equals("vectors")) {
            String doc = Files.readString(Path.of(a[1]), StandardCharsets.UTF_8);
            Matcher m = Pattern.compile("\"envelope\": \"([^\"]+)\",\\s*\"key_hex\": \"([0-9a-f]+)\",\\s*\"key_id\": \"([^\"]+)\"").matcher(doc);
            int n = 0;
            for (; m.find(); n++) {
                String env = m.group(1);
                byte[] k = HexFormat.of().parseHex(m.group(2));
                String kind = env.split("\\.")[2];
                String plain = open(k, m.group(3), kind, env);
                check(plain.startsWith("{\"v\":1"), "vector " + n);
            }
            check(n >= 4, "vectors found");
            System.out.println("java: " + n + " test vectors ok");
            return;
        }
        if (a.length >= 4 && a[0].equals("selftest")) {
            HisBridgeClient c = new HisBridgeClient(Path.of(a[1]));
            Path in = Path.of(a[2]), out = Path.of(a[3]);
            List<String> channels = new ArrayList<>(List.of("folder"));
            if (a.length > 4) channels.add("socket");
            for (String ch : channels) {
                String order = "JV" + ch.charAt(0) + System.currentTimeMillis();
                java.util.function.Function<String, String> call = j -> {
                    try { return ch.equals("folder") ? c.callFolder(in, out, j) : c.callSocket(Integer.parseInt(a[4]), j); }
                    catch (Exception e) { throw new RuntimeException(e); }
                };
                String r = call.apply(instruction("order", "W01", order, "+12.30", null));
                check("SUCCESS".equals(field(r, "status")) && "WECHAT".equals(field(r, "channel")), r);
                check(field(r, "pay_order_no") != null && field(r, "device_id") != null, r);
                r = call.apply(instruction("order", "W01", order, "-2.30", "R1"));
                check("REFUNDED".equals(field(r, "status")), r);
                r = call.apply(instruction("query", "W01", order, null, null));
                check("SUCCESS".equals(field(r, "status")), r);
                r = call.apply(instruction("cancel", "W01", order, null, null));
                check("SUCCESS".equals(field(r, "status")), r);
                r = call.apply(instruction("order", "W01", order + "X", "+1.91", null));
                check("FAILED".equals(field(r, "status")) && "E_PAYMENT_DECLINED".equals(field(r, "error_code")), r);
                // The patient walks away (.94: never scans); the cashier cancels the running payment.
                String away = instruction("order", "W01", order + "W", "+5.94", null);
                if (ch.equals("folder")) {
                    String stem = c.sendFolder(in, away);
                    Thread.sleep(500);
                    r = call.apply(instruction("cancel", "W01", order + "W", null, null));
                    check("CANCELLED".equals(field(r, "status")), r);
                    r = c.waitFolder(out, stem);
                } else {
                    final String[] got = new String[1];
                    Thread t = new Thread(() -> got[0] = call.apply(away));
                    t.start();
                    Thread.sleep(500);
                    r = call.apply(instruction("cancel", "W01", order + "W", null, null));
                    check("CANCELLED".equals(field(r, "status")), r);
                    t.join();
                    r = got[0];
                }
                check("CANCELLED".equals(field(r, "status")) && "E_CANCELLED".equals(field(r, "error_code")), r);
                System.out.println("java " + ch + ": pay, refund, query, cancel (finished and running), declined: ok");
            }
            return;
        }
        System.err.println("usage: vectors FILE | selftest KEYFILE INBOX OUTBOX [PORT]");
        System.exit(2);
    }
}
