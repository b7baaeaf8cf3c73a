package cn.hisbridge.pos;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.After;
import org.junit.Test;

/** The SDK driven as the bridge drives it, through its streams, with a scripted backend. */
public class PosServerTest {
    /** An in-memory store that can be made to fail. */
    static final class MemStore implements TransactionStore {
        final Map<String, Transaction> m = new LinkedHashMap<>();
        volatile boolean failing;

        @Override
        public synchronized Transaction get(String ref) {
            Transaction t = m.get(ref);
            return t == null ? null : t.copy();
        }

        @Override
        public synchronized void put(Transaction t) throws IOException {
            if (failing) {
                throw new IOException("disk full");
            }
            m.put(t.ref, t.copy());
        }

        @Override
        public synchronized List<Transaction> all() {
            List<Transaction> l = new ArrayList<>();
            for (Transaction t : m.values()) {
                l.add(t.copy());
            }
            return l;
        }
    }

    /** A backend whose collections wait for the test to say how they end. */
    static final class Scripted implements PaymentBackend {
        final LinkedBlockingQueue<Outcome> outcomes = new LinkedBlockingQueue<>();
        final AtomicInteger collects = new AtomicInteger();
        final AtomicInteger reversals = new AtomicInteger();
        volatile Outcome queryAnswer = Outcome.notFound();
        volatile boolean payEvenIfCancelled;

        @Override
        public Outcome collect(String ref, long amountFen, String description, Progress p) throws Exception {
            collects.incrementAndGet();
            while (true) {
                if (p.cancelled() && !payEvenIfCancelled) {
                    return Outcome.cancelled(null, null);
                }
                Outcome o = outcomes.poll(10, TimeUnit.MILLISECONDS);
                if (o != null) {
                    if (o.status == Transaction.Status.IN_PROGRESS) {
                        p.userPaying();
                        continue;
                    }
                    return o;
                }
            }
        }

        @Override
        public Outcome refund(String ref, Transaction original, long amountFen) {
            return Outcome.refunded("R-" + ref);
        }

        @Override
        public Outcome reverse(Transaction sale) {
            reversals.incrementAndGet();
            return new Outcome(Transaction.Status.REVERSED, sale.channel, sale.payNo, null, null);
        }

        @Override
        public Outcome query(Transaction t) {
            return queryAnswer;
        }
    }

    /** The bridge's end: its own link over the server's streams. */
    final class Bridge {
        final Link link = new Link(100);
        final PipedOutputStream toPos = new PipedOutputStream();
        final PipedInputStream fromPos = new PipedInputStream(65536);
        final LinkedBlockingQueue<Message> got = new LinkedBlockingQueue<>();
        final Thread thread;
        final Thread serving;
        volatile boolean done;

        Bridge(PosServer server) throws IOException {
            PipedInputStream posIn = new PipedInputStream(toPos, 65536);
            PipedOutputStream posOut = new PipedOutputStream(fromPos);
            serving = new Thread(() -> server.serve(posIn, posOut));
            serving.start();
            thread = new Thread(this::pump);
            thread.start();
        }

        private void pump() {
            byte[] buf = new byte[1024];
            try {
                while (!done) {
                    int n = fromPos.available() > 0 ? fromPos.read(buf) : 0;
                    long now = System.nanoTime() / 1_000_000;
                    synchronized (this) {
                        if (n > 0) {
                            link.handleInput(buf, 0, n, now);
                        }
                        link.handleTimeout(now);
                        Link.Event e;
                        while ((e = link.pollEvent()) != null) {
                            if (e.kind == Link.Event.Kind.RECEIVED) {
                                got.add(Message.decode(e.body));
                            }
                        }
                        byte[] b;
                        while ((b = link.pollTransmit()) != null) {
                            toPos.write(b);
                            toPos.flush();
                        }
                    }
                    if (n <= 0) {
                        Thread.sleep(2);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // ended
            }
        }

        synchronized void send(String body) {
            link.send(body, System.nanoTime() / 1_000_000);
        }

        /** The next message with this command (and ref, when given), skipping others. */
        Message expect(String command, String ref) throws InterruptedException {
            long until = System.currentTimeMillis() + 5000;
            while (System.currentTimeMillis() < until) {
                Message m = got.poll(50, TimeUnit.MILLISECONDS);
                if (m != null && m.command.equals(command) && (ref == null || ref.equals(m.get("ref")))) {
                    return m;
                }
            }
            throw new AssertionError("no " + command + " for " + ref);
        }

        /** Asserts nothing with this command arrives within `ms`. */
        void quiet(String command, long ms) throws InterruptedException {
            long until = System.currentTimeMillis() + ms;
            while (System.currentTimeMillis() < until) {
                Message m = got.poll(20, TimeUnit.MILLISECONDS);
                if (m != null && m.command.equals(command)) {
                    throw new AssertionError("unexpected " + m);
                }
            }
        }

        void close() throws IOException, InterruptedException {
            done = true;
            toPos.close();
            thread.join(2000);
            serving.join(2000);
        }
    }

    private final List<Bridge> bridges = new ArrayList<>();
    private final MemStore store = new MemStore();
    private final Scripted backend = new Scripted();

    private PosServer server() throws IOException {
        PosServer.Config c = new PosServer.Config();
        c.deviceId = "POS-0009";
        c.recoveryQueryMs = 50;
        return new PosServer(store, backend, c);
    }

    private Bridge connect(PosServer s) throws IOException {
        Bridge b = new Bridge(s);
        bridges.add(b);
        return b;
    }

    @After
    public void close() throws Exception {
        for (Bridge b : bridges) {
            b.close();
        }
    }

    @Test
    public void helloPingInfo() throws Exception {
        Bridge b = connect(server());
        b.send("HELLO|proto=1");
        assertEquals("POS-0009", b.expect("HELLO", null).get("device"));
        b.send("PING");
        b.expect("PONG", null);
        b.send("INFO");
        assertTrue(b.expect("INFO", null).get("time").matches("\\d{14}"));
        b.send("NOPE");
        assertEquals("UNKNOWN_COMMAND", b.expect("ERROR", null).get("code"));
    }

    @Test
    public void aSaleIsStoredBeforeTheBackendActsAndExecutedOnce() throws Exception {
        Bridge b = connect(server());
        b.send("SALE|ref=S.1|amount=1250|desc=x");
        assertEquals("WAIT_SCAN", b.expect("EVENT", "S.1").get("stage"));
        assertEquals(Transaction.Status.IN_PROGRESS, store.get("S.1").status);
        backend.outcomes.add(PaymentBackend.Outcome.inProgress());
        assertEquals("USER_PAYING", b.expect("EVENT", "S.1").get("stage"));
        b.send("QUERY|ref=S.1");
        Message q = b.expect("RESULT", "S.1");
        assertEquals("IN_PROGRESS", q.get("status"));
        assertEquals("SALE", q.get("op"));
        backend.outcomes.add(PaymentBackend.Outcome.paid("WECHAT", "4200009"));
        Message r = b.expect("RESULT", "S.1");
        assertEquals("PAID", r.get("status"));
        assertEquals("4200009", r.get("pay_no"));
        assertEquals("1250", r.get("amount"));
        assertEquals("WECHAT", r.get("channel"));
        assertTrue(r.get("time").matches("\\d{14}"));
        b.send("SALE|ref=S.1|amount=1250");
        assertEquals("4200009", b.expect("RESULT", "S.1").get("pay_no"));
        b.quiet("EVENT", 200);
        assertEquals(1, backend.collects.get());
    }

    @Test
    public void oneMoneyTransactionAtATime() throws Exception {
        Bridge b = connect(server());
        b.send("SALE|ref=S.1|amount=100");
        b.expect("EVENT", "S.1");
        b.send("SALE|ref=S.2|amount=100");
        Message busy = b.expect("BUSY", "S.2");
        assertEquals("S.1", busy.get("current"));
        b.send("REFUND|ref=S.0@R.1|orig=S.0|amount=1");
        assertEquals("S.1", b.expect("BUSY", "S.0@R.1").get("current"));
        b.send("QUERY|ref=S.2");
        Message nf = b.expect("RESULT", "S.2");
        assertEquals("a SALE refused with BUSY keeps no record", "NOT_FOUND", nf.get("status"));
        assertNull(nf.get("op"));
        backend.outcomes.add(PaymentBackend.Outcome.paid("ALIPAY", "2026"));
        b.expect("RESULT", "S.1");
    }

    @Test
    public void cancelBeforePaymentAndCancelCrossingPayment() throws Exception {
        Bridge b = connect(server());
        b.send("SALE|ref=C.1|amount=100");
        b.expect("EVENT", "C.1");
        b.send("CANCEL|ref=C.1");
        Message c = b.expect("RESULT", "C.1");
        assertEquals("CANCELLED", c.get("status"));
        assertEquals("SALE", c.get("op"));
        b.send("CANCEL|ref=NEVER.1");
        assertEquals("NOT_FOUND", b.expect("RESULT", "NEVER.1").get("status"));

        backend.payEvenIfCancelled = true;
        b.send("SALE|ref=C.2|amount=100");
        b.expect("EVENT", "C.2");
        b.send("CANCEL|ref=C.2");
        Thread.sleep(50);
        backend.outcomes.add(PaymentBackend.Outcome.paid("WECHAT", "4200010"));
        assertEquals("PAID", b.expect("RESULT", "C.2").get("status"));
        Message rev = b.expect("RESULT", "C.2");
        assertEquals("REVERSED", rev.get("status"));
        assertEquals("4200010", rev.get("pay_no"));
        assertEquals(Transaction.Status.REVERSED, store.get("C.2").status);
        assertEquals(1, backend.reversals.get());
    }

    @Test
    public void refundsAreCheckedAgainstTheCollection() throws Exception {
        Bridge b = connect(server());
        b.send("SALE|ref=P.1|amount=500");
        backend.outcomes.add(PaymentBackend.Outcome.paid("WECHAT", "4200011"));
        b.expect("RESULT", "P.1");
        b.send("REFUND|ref=P@R1.1|orig=P.1|amount=300");
        Message r = b.expect("RESULT", "P@R1.1");
        assertEquals("REFUNDED", r.get("status"));
        assertEquals("REFUND", r.get("op"));
        assertEquals("300", r.get("amount"));
        assertEquals("R-P@R1.1", r.get("pay_no"));
        b.send("QUERY|ref=P@R1.1");
        assertEquals("REFUNDED", b.expect("RESULT", "P@R1.1").get("status"));
        b.send("REFUND|ref=P@R2.1|orig=P.1|amount=201");
        Message f = b.expect("RESULT", "P@R2.1");
        assertEquals("FAILED", f.get("status"));
        assertEquals("REFUND", f.get("op"));
        assertEquals("REFUND_EXCEEDS", f.get("code"));
        b.send("REFUND|ref=Q@R1.1|orig=Q.1|amount=1");
        assertEquals("ORIG_NOT_PAID", b.expect("RESULT", "Q@R1.1").get("code"));
        b.send("TOTALS|date=" + store.get("P.1").time.substring(0, 8));
        assertEquals("1/500/1/300", b.expect("TOTALS", null).get("WECHAT"));
    }

    @Test
    public void aStoreThatFailsStartsNothing() throws Exception {
        Bridge b = connect(server());
        store.failing = true;
        b.send("SALE|ref=F.1|amount=100");
        assertEquals("STORE_FAILED", b.expect("ERROR", null).get("code"));
        Thread.sleep(100);
        assertEquals(0, backend.collects.get());
        store.failing = false;
        b.send("QUERY|ref=F.1");
        assertEquals("NOT_FOUND", b.expect("RESULT", "F.1").get("status"));
    }

    @Test
    public void aRestartSettlesRunningTransactionsWithTheWalletNeverAgain() throws Exception {
        Transaction charged = new Transaction();
        charged.ref = "R.1";
        charged.op = Transaction.Op.SALE;
        charged.amountFen = 700;
        charged.time = "20261202100000";
        store.put(charged);
        Transaction never = charged.copy();
        never.ref = "R.2";
        store.put(never);
        backend.queryAnswer = PaymentBackend.Outcome.inProgress();
        PosServer s = server();
        Bridge b = connect(s);
        b.send("QUERY|ref=R.1");
        assertEquals("IN_PROGRESS", b.expect("RESULT", "R.1").get("status"));
        b.send("SALE|ref=X.1|amount=100");
        assertEquals("R.1", b.expect("BUSY", "X.1").get("current"));
        backend.queryAnswer = PaymentBackend.Outcome.paid("WECHAT", "4200012");
        Message r = b.expect("RESULT", "R.1");
        assertEquals("PAID", r.get("status"));
        assertEquals("4200012", r.get("pay_no"));
        assertEquals(0, backend.collects.get());
        // A transaction the wallet never saw moved no money: CANCELLED, with the reason.
        backend.queryAnswer = PaymentBackend.Outcome.notFound();
        Transaction lost = charged.copy();
        lost.ref = "R.3";
        store.put(lost);
        PosServer s2 = server();
        Bridge b2 = connect(s2);
        b2.send("QUERY|ref=R.3");
        Message c = b2.expect("RESULT", "R.3");
        for (int i = 0; i < 50 && "IN_PROGRESS".equals(c.get("status")); i++) {
            Thread.sleep(20);
            b2.send("QUERY|ref=R.3");
            c = b2.expect("RESULT", "R.3");
        }
        assertEquals("CANCELLED", c.get("status"));
        assertEquals("POS_RESTARTED", c.get("code"));
        assertNotNull(c.get("msg"));
    }

    @Test
    public void aPaymentThatEndsWhileDisconnectedIsAnsweredOnTheNextConnection() throws Exception {
        PosServer s = server();
        Bridge b = connect(s);
        b.send("SALE|ref=D.1|amount=100");
        b.expect("EVENT", "D.1");
        b.close();
        bridges.remove(b);
        backend.outcomes.add(PaymentBackend.Outcome.paid("WECHAT", "4200013"));
        for (int i = 0; i < 100 && store.get("D.1").status != Transaction.Status.PAID; i++) {
            Thread.sleep(20);
        }
        assertEquals(Transaction.Status.PAID, store.get("D.1").status);
        Bridge again = connect(s);
        again.send("QUERY|ref=D.1");
        assertEquals("4200013", again.expect("RESULT", "D.1").get("pay_no"));
    }
}
