package cn.hisbridge.pos;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import java.nio.charset.StandardCharsets;
import org.junit.Test;

public class FrameTest {
    private static byte[] hex(String s) {
        String[] p = s.trim().split("\\s+");
        byte[] b = new byte[p.length];
        for (int i = 0; i < p.length; i++) {
            b[i] = (byte) Integer.parseInt(p[i], 16);
        }
        return b;
    }

    @Test
    public void pingIsTheDocumentsExample() {
        // docs/pos-protocol.md §2: PING with sequence 0001.
        assertArrayEquals(hex("02 00 09 30 30 30 31 7C 50 49 4E 47 03 67"),
                Frame.encode("0001|PING".getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    public void deframerFindsFramesAcksAndNaksAndSkipsStrayBytes() {
        Frame.Deframer d = new Frame.Deframer();
        byte[] f = Frame.encode("0002|PONG".getBytes(StandardCharsets.US_ASCII));
        byte[] in = new byte[f.length + 4];
        in[0] = 'x';
        in[1] = Frame.ACK;
        System.arraycopy(f, 0, in, 2, f.length);
        in[f.length + 2] = Frame.NAK;
        in[f.length + 3] = '\r';
        d.push(in, 0, in.length, 0);
        assertEquals(Frame.Token.Kind.ACK, d.poll().kind);
        Frame.Token t = d.poll();
        assertEquals(Frame.Token.Kind.FRAME, t.kind);
        assertEquals("0002|PONG", new String(t.payload, StandardCharsets.US_ASCII));
        assertEquals(Frame.Token.Kind.NAK, d.poll().kind);
        assertNull(d.poll());
    }

    @Test
    public void malformedFramesAreInvalid() {
        Frame.Deframer d = new Frame.Deframer();
        byte[] f = Frame.encode("0003|PING".getBytes(StandardCharsets.US_ASCII));
        f[f.length - 1] ^= 1; // LRC
        d.push(f, 0, f.length, 0);
        assertEquals("LRC mismatch", d.poll().reason);
        byte[] empty = {Frame.STX, 0, 0};
        d.push(empty, 0, 3, 0);
        assertEquals("LEN is 0", d.poll().reason);
        byte[] tooLong = {Frame.STX, 0x04, 0x01};
        d.push(tooLong, 0, 3, 0);
        assertEquals(Frame.Token.Kind.INVALID, d.poll().kind);
        byte[] noEtx = Frame.encode("0004|PING".getBytes(StandardCharsets.US_ASCII));
        noEtx[noEtx.length - 2] = 'X';
        d.push(noEtx, 0, noEtx.length, 0);
        assertEquals("no ETX after the payload", d.poll().reason);
    }

    @Test
    public void aPartialFrameIsDroppedAfter500ms() {
        Frame.Deframer d = new Frame.Deframer();
        byte[] f = Frame.encode("0005|PING".getBytes(StandardCharsets.US_ASCII));
        d.push(f, 0, 5, 1000);
        assertEquals(1500, d.deadline());
        d.handleTimeout(1500);
        assertEquals(-1, d.deadline());
        // The rest arrives late: not a frame; the next whole frame is found.
        d.push(f, 5, f.length - 5, 1600);
        d.push(f, 0, f.length, 1700);
        assertEquals(Frame.Token.Kind.FRAME, d.poll().kind);
        assertNull(d.poll());
    }

    @Test
    public void aLongFrameAt9600BaudHasItsTransmissionTime() {
        byte[] payload = new byte[Frame.MAX_PAYLOAD];
        java.util.Arrays.fill(payload, (byte) 'x');
        byte[] f = Frame.encode(payload);
        Frame.Deframer d = new Frame.Deframer(10_000_000L / 9600);
        // 1029 bytes at 960 bytes/s: the last one arrives 1071 ms after the STX.
        for (int i = 0; i < f.length; i++) {
            long now = i * 1042L / 1000;
            d.handleTimeout(now);
            d.push(f, i, 1, now);
        }
        assertEquals(Frame.Token.Kind.FRAME, d.poll().kind);
    }
}
