package cn.hisbridge.pos;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * The link layer of docs/pos-protocol.md §3, sans-IO: feed it bytes and the time, take back
 * bytes to write, received payloads and the next deadline.
 * <ul>
 * <li>every valid frame is ACKed, every invalid one NAKed (§3.1);</li>
 * <li>stop-and-wait: one unacknowledged frame at a time, re-sent identical on NAK or after
 * 300 ms without ACK, given up after 3 re-sends (§3.2); frames queue behind it;</li>
 * <li>each frame starts with a 4-digit sequence number 0001..9999, wrapping; a frame equal to
 * the last one received (sequence and payload) is a duplicate: ACKed again, not delivered
 * (§3.3). The duplicate memory is kept across HELLO: only the bridge's own sequence tells
 * frames apart.</li>
 * </ul>
 */
public final class Link {
    public static final long ACK_TIMEOUT_MS = 300;
    public static final int MAX_RESENDS = 3;

    /** What happened on the link. */
    public static final class Event {
        public enum Kind { RECEIVED, DELIVERED, GAVE_UP }

        public final Kind kind;
        /** The payload after the sequence number. */
        public final String body;

        Event(Kind kind, String body) {
            this.kind = kind;
            this.body = body;
        }
    }

    private final Frame.Deframer deframer;
    private final ArrayDeque<byte[]> transmit = new ArrayDeque<>();
    private final ArrayDeque<Event> events = new ArrayDeque<>();
    private final ArrayDeque<String> queue = new ArrayDeque<>();
    private int seq;
    private byte[] inFlight;
    private String inFlightBody;
    private long inFlightSince;
    private int resends;
    private byte[] lastReceived;

    /** The time a byte takes on the line, in microseconds (0 on USB). */
    private final long byteMicros;

    /** {@code firstSeq} should differ between runs (a restarted POS must not look like a duplicate). */
    public Link(int firstSeq) {
        this(firstSeq, 0);
    }

    /**
     * A link on a serial line at {@code baud} (0: USB, no line time): the ACK timeout counts
     * from the end of a frame's transmission, and a frame being received gets its transmission
     * time on top of the 500 ms window (pos-protocol.md §2.3, §3.2).
     */
    public Link(int firstSeq, int baud) {
        this.seq = ((firstSeq - 1) % 9999 + 9999) % 9999; // the next frame gets firstSeq
        this.byteMicros = baud > 0 ? 10_000_000L / baud : 0;
        this.deframer = new Frame.Deframer(byteMicros);
    }

    private long ackDeadline() {
        return inFlightSince + ACK_TIMEOUT_MS + inFlight.length * byteMicros / 1000;
    }

    /** Queues a payload body (without sequence number) to send. */
    public void send(String body, long nowMillis) {
        queue.add(body);
        pump(nowMillis);
    }

    private void pump(long now) {
        if (inFlight != null || queue.isEmpty()) {
            return;
        }
        String body = queue.poll();
        seq = seq % 9999 + 1;
        byte[] payload = String.format("%04d|%s", seq, body).getBytes(StandardCharsets.UTF_8);
        inFlight = Frame.encode(payload);
        inFlightBody = body;
        inFlightSince = now;
        resends = 0;
        transmit.add(inFlight);
    }

    public void handleInput(byte[] bytes, int off, int n, long nowMillis) {
        deframer.push(bytes, off, n, nowMillis);
        Frame.Token t;
        while ((t = deframer.poll()) != null) {
            switch (t.kind) {
                case ACK:
                    if (inFlight != null) {
                        events.add(new Event(Event.Kind.DELIVERED, inFlightBody));
                        inFlight = null;
                        pump(nowMillis);
                    }
                    // A late or stray ACK (nothing in flight) is ignored.
                    break;
                case NAK:
                    if (inFlight != null) {
                        resend(nowMillis);
                    }
                    break;
                case INVALID:
                    transmit.add(new byte[] {(byte) Frame.NAK});
                    break;
                case FRAME:
                    onFrame(t.payload);
                    break;
                default:
                    break;
            }
        }
    }

    private void onFrame(byte[] payload) {
        transmit.add(new byte[] {(byte) Frame.ACK});
        if (lastReceived != null && Arrays.equals(lastReceived, payload)) {
            return; // a duplicate: its ACK was lost
        }
        lastReceived = payload;
        if (payload.length < 5 || payload[4] != '|' || !digits(payload)) {
            events.add(new Event(Event.Kind.RECEIVED, null));
            return;
        }
        events.add(new Event(Event.Kind.RECEIVED, new String(payload, 5, payload.length - 5, StandardCharsets.UTF_8)));
    }

    private static boolean digits(byte[] p) {
        for (int i = 0; i < 4; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return false;
            }
        }
        return true;
    }

    private void resend(long now) {
        if (resends >= MAX_RESENDS) {
            events.add(new Event(Event.Kind.GAVE_UP, inFlightBody));
            inFlight = null;
            pump(now);
            return;
        }
        resends++;
        inFlightSince = now;
        transmit.add(inFlight);
    }

    public void handleTimeout(long nowMillis) {
        deframer.handleTimeout(nowMillis);
        if (inFlight != null && nowMillis >= ackDeadline()) {
            resend(nowMillis);
        }
    }

    /** The next deadline in milliseconds, or -1. */
    public long deadline() {
        long d = deframer.deadline();
        if (inFlight != null) {
            long a = ackDeadline();
            d = d < 0 ? a : Math.min(d, a);
        }
        return d;
    }

    public byte[] pollTransmit() {
        return transmit.poll();
    }

    public Event pollEvent() {
        return events.poll();
    }

    /** Whether nothing waits for an ACK and nothing is queued. */
    public boolean isIdle() {
        return inFlight == null && queue.isEmpty();
    }
}
