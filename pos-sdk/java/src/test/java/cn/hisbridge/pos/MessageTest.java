package cn.hisbridge.pos;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import org.junit.Test;

public class MessageTest {
    @Test
    public void roundTripAndEmptyValuesMeanAbsent() {
        Message m = Message.decode("SALE|ref=2026.1|amount=1250|desc=门诊缴费|channel=|extra=1");
        assertEquals("SALE", m.command);
        assertEquals("2026.1", m.get("ref"));
        assertEquals(1250, m.getLong("amount"));
        assertEquals("门诊缴费", m.get("desc"));
        assertNull(m.get("channel"));
        assertEquals(-1, m.getLong("missing"));
        assertEquals("RESULT|ref=A.1|msg=ab", new Message("RESULT").put("ref", "A.1").put("code", "").put("msg", "a|b\n").encode());
    }

    @Test(expected = IllegalArgumentException.class)
    public void aFieldWithoutEqualsIsRefused() {
        Message.decode("QUERY|ref");
    }
}
