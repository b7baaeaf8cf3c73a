package cn.hisbridge.pos;

import java.io.ByteArrayOutputStream;
import java.util.ArrayDeque;

/**
 * Frames of docs/pos-protocol.md §2: {@code STX LEN_HI LEN_LO PAYLOAD ETX LRC}, and the
 * single-byte ACK/NAK of §3.1. {@link Deframer} splits a byte stream into tokens; it keeps no
 * clock of its own: callers pass {@code nowMillis} (any monotonic millisecond count).
 */
public final class Frame {
    public static final int STX = 0x02;
    public static final int ETX = 0x03;
    public static final int ACK = 0x06;
    public static final int NAK = 0x15;
    /** §2.1: LEN is 1..=1024. */
    public static final int MAX_PAYLOAD = 1024;
    /** §2.3: a frame must be complete within this many milliseconds of its STX. */
    public static final long FRAME_TIMEOUT_MS = 500;

    private Frame() {}

    /** XOR of every byte from LEN_HI to ETX inclusive (§2.2). */
    public static int lrc(byte[] b, int from, int to) {
        int x = 0;
        for (int i = from; i < to; i++) {
            x ^= b[i] & 0xFF;
        }
        return x;
    }

    /** Encodes one payload; payloads of 0 or more than 1024 bytes are refused. */
    public static byte[] encode(byte[] payload) {
        if (payload.length == 0 || payload.length > MAX_PAYLOAD) {
            throw new IllegalArgumentException("payload length " + payload.length + " is outside 1..1024");
        }
        byte[] out = new byte[payload.length + 5];
        out[0] = STX;
        out[1] = (byte) (payload.length >> 8);
        out[2] = (byte) payload.length;
        System.arraycopy(payload, 0, out, 3, payload.length);
        out[3 + payload.length] = ETX;
        out[4 + payload.length] = (byte) lrc(out, 1, 4 + payload.length);
        return out;
    }

    /** What the deframer recognised. */
    public static final class Token {
        public enum Kind { ACK, NAK, FRAME, INVALID }

        public final Kind kind;
        /** The payload of a valid frame. */
        public final byte[] payload;
        /** Why an invalid frame was dropped (answered with NAK). */
        public final String reason;

        Token(Kind kind, byte[] payload, String reason) {
            this.kind = kind;
            this.payload = payload;
            this.reason = reason;
        }

        @Override
        public String toString() {
            return kind + (reason != null ? "(" + reason + ")" : "");
        }
    }

    /** Splits a byte stream into ACK, NAK, frames and invalid frames (§2.4). */
    public static final class Deframer {
        private final ByteArrayOutputStream buf = new ByteArrayOutputStream();
        private int len = -1;
        private long started = -1;
        private final ArrayDeque<Token> out = new ArrayDeque<>();
        private final long byteMicros;

        public Deframer() {
            this(0);
        }

        /** A deframer for a line where a byte takes {@code byteMicros} (a serial line's speed). */
        public Deframer(long byteMicros) {
            this.byteMicros = byteMicros;
        }

        public void push(byte[] bytes, int off, int n, long nowMillis) {
            for (int i = off; i < off + n; i++) {
                pushByte(bytes[i] & 0xFF, nowMillis);
            }
        }

        private void pushByte(int b, long now) {
            if (started < 0) {
                if (b == STX) {
                    buf.reset();
                    buf.write(b);
                    started = now;
                    len = -1;
                } else if (b == ACK) {
                    out.add(new Token(Token.Kind.ACK, null, null));
                } else if (b == NAK) {
                    out.add(new Token(Token.Kind.NAK, null, null));
                }
                // Any other byte outside a frame is skipped silently (§2.4).
                return;
            }
            buf.write(b);
            int have = buf.size();
            if (have == 3) {
                byte[] h = buf.toByteArray();
                len = ((h[1] & 0xFF) << 8) | (h[2] & 0xFF);
                if (len == 0) {
                    invalid("LEN is 0");
                } else if (len > MAX_PAYLOAD) {
                    invalid("LEN " + len + " is over 1024");
                }
                return;
            }
            if (len > 0 && have == 3 + len + 1) {
                if (b != ETX) {
                    invalid("no ETX after the payload");
                }
                return;
            }
            if (len > 0 && have == 3 + len + 2) {
                byte[] f = buf.toByteArray();
                started = -1;
                if (lrc(f, 1, 4 + len) != (f[4 + len] & 0xFF)) {
                    out.add(new Token(Token.Kind.INVALID, null, "LRC mismatch"));
                } else {
                    byte[] p = new byte[len];
                    System.arraycopy(f, 3, p, 0, len);
                    out.add(new Token(Token.Kind.FRAME, p, null));
                }
            }
        }

        /** Drops the frame being read and resynchronises on the next STX. */
        private void invalid(String why) {
            started = -1;
            out.add(new Token(Token.Kind.INVALID, null, why));
        }

        /** The next token, or null. */
        public Token poll() {
            return out.poll();
        }

        /** When a partial frame must be dropped (§2.3), or -1. */
        public long deadline() {
            long frameLen = len > 0 ? len + 5 : 5;
            return started < 0 ? -1 : started + FRAME_TIMEOUT_MS + frameLen * byteMicros / 1000;
        }

        /** Drops a partial frame whose time ran out: no answer, the sender re-sends. */
        public void handleTimeout(long nowMillis) {
            if (started >= 0 && nowMillis >= deadline()) {
                started = -1;
            }
        }
    }
}
