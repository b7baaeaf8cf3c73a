package cn.hisbridge.pos;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.nio.charset.StandardCharsets;
import org.junit.Test;

public class LinkTest {
    private static byte[] frame(String payload) {
        return Frame.encode(payload.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    public void framesAreAckedAndDuplicatesNotDelivered() {
        Link l = new Link(1);
        byte[] f = frame("0042|PING");
        l.handleInput(f, 0, f.length, 0);
        assertArrayEquals(new byte[] {Frame.ACK}, l.pollTransmit());
        assertEquals("PING", l.pollEvent().body);
        l.handleInput(f, 0, f.length, 10); // its ACK was lost
        assertArrayEquals(new byte[] {Frame.ACK}, l.pollTransmit());
        assertNull("a duplicate is not acted on", l.pollEvent());
        byte[] g = frame("0043|PING");
        l.handleInput(g, 0, g.length, 20);
        l.pollTransmit();
        assertEquals("PING", l.pollEvent().body);
    }

    @Test
    public void invalidFramesAreNaked() {
        Link l = new Link(1);
        byte[] f = frame("0001|PING");
        f[5] ^= 0x20;
        l.handleInput(f, 0, f.length, 0);
        assertArrayEquals(new byte[] {Frame.NAK}, l.pollTransmit());
        assertNull(l.pollEvent());
    }

    @Test
    public void stopAndWaitResendsIdenticalBytesThreeTimesThenGivesUp() {
        Link l = new Link(9999);
        l.send("PONG", 0);
        l.send("INFO|device=P1", 0);
        byte[] first = l.pollTransmit();
        assertArrayEquals(frame("9999|PONG"), first);
        assertNull("one frame in flight", l.pollTransmit());
        assertEquals(300, l.deadline());
        for (int i = 1; i <= 3; i++) {
            l.handleTimeout(300L * i);
            assertArrayEquals(first, l.pollTransmit());
        }
        l.handleTimeout(1200);
        assertEquals(Link.Event.Kind.GAVE_UP, l.pollEvent().kind);
        // The next frame goes, numbered after the wrap.
        assertArrayEquals(frame("0001|INFO|device=P1"), l.pollTransmit());
        byte[] nak = {Frame.NAK};
        l.handleInput(nak, 0, 1, 1250);
        assertArrayEquals("NAK: the same bytes again", frame("0001|INFO|device=P1"), l.pollTransmit());
        byte[] ack = {Frame.ACK};
        l.handleInput(ack, 0, 1, 1260);
        assertEquals(Link.Event.Kind.DELIVERED, l.pollEvent().kind);
        assertTrue(l.isIdle());
        l.handleInput(ack, 0, 1, 1270);
        assertNull("a stray ACK is ignored", l.pollEvent());
    }
}
